"""The few statements whose SQL differs between SQLite and Postgres."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


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
