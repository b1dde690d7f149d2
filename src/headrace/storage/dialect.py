"""The few statements whose SQL differs between SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage.columns import Timestamp


def insert(dialect: str, table: sa.Table) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if dialect == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)


def insert_ignore(dialect: str, table: sa.Table, *index_elements: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING."""
    stmt = insert(dialect, table)
    return stmt.on_conflict_do_nothing(index_elements=list(index_elements) or None)


def json_text(column: Any, dialect: str) -> Any:
    """A JSON column as searchable text."""
    return sa.cast(column, sa.Text)


def json_array_contains(column: Any, value: str, dialect: str) -> Any:
    """True when the JSON array in ``column`` contains the string ``value``."""
    if dialect == "sqlite":
        each = sa.func.json_each(column).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == value))
    return column.op("@>")(sa.func.jsonb_build_array(value))


def json_array_empty(column: Any, dialect: str) -> Any:
    """True when the JSON array in ``column`` is empty or null."""
    if dialect == "sqlite":
        return sa.func.coalesce(sa.func.json_array_length(column), 0) == 0
    return sa.func.coalesce(sa.func.jsonb_array_length(column), 0) == 0


def sqlite_timestamp(value: datetime) -> str:
    """The text form ``columns.Timestamp`` stores on SQLite (fixed-width UTC)."""
    tz = value.tzinfo
    if tz is not None:
        value = (value if tz is UTC else value.astimezone(UTC)).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()


def _maybe(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _converter(column: sa.Column[Any], dialect: str) -> Callable[[Any], Any]:
    kind = column.type
    if isinstance(kind, Timestamp):
        if dialect == "sqlite":
            return _maybe(
                lambda v: sqlite_timestamp(datetime.fromisoformat(v) if isinstance(v, str) else v)
            )
        return _maybe(lambda v: v if v.tzinfo else v.replace(tzinfo=UTC))
    if isinstance(kind, sa.Uuid):
        return _maybe(lambda v: str(v).replace("-", "")) if dialect == "sqlite" else _maybe(str)
    if isinstance(kind, sa.JSON) or isinstance(getattr(kind, "impl", None), sa.JSON):
        return _json
    return lambda value: value


BULK_SLICE = 250


@cache
def _bulk_plan(table: sa.Table, dialect: str, ignore: bool) -> tuple[str, tuple[Any, ...]]:
    columns = list(table.columns)
    names = ", ".join(c.name for c in columns)
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
    else:
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
    if ignore:
        sql += " ON CONFLICT DO NOTHING"
    plan = tuple((c.name, _converter(c, dialect)) for c in columns)
    return sql, plan


async def bulk_insert(
    conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]], ignore: bool = True
) -> None:
    """Insert many complete rows with one driver-level executemany.

    The hot paths (events, their resource rows, task-run states) skip SQLAlchemy's
    per-row parameter processing; values are converted here exactly as the column
    types would store them.
    """
    if not rows:
        return
    sql, plan = _bulk_plan(table, conn.dialect.name, ignore)
    # Converting is the only Python work per row; doing it in slices, each sent as
    # its own executemany, keeps the event loop free for other requests meanwhile.
    for start in range(0, len(rows), BULK_SLICE):
        params = [
            tuple([convert(row.get(name)) for name, convert in plan])
            for row in rows[start : start + BULK_SLICE]
        ]
        await conn.exec_driver_sql(sql, params)
