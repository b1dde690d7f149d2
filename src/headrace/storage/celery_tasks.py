"""Celery tasks: folded rows in and out, Flower's filtered and sorted list, retention."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.celery_monitor import search
from headrace.celery_monitor.fold import TaskRow
from headrace.errors import NotFound
from headrace.storage import dialect as dialects
from headrace.storage import tables as t

_c = t.celery_tasks.c
_FIELDS = [f.name for f in dataclasses.fields(TaskRow)]
# Stored as 0 / "" while unknown so they sort and index alike on both backends.
_UNKNOWN = {"received": 0.0, "started": 0.0, "name": ""}
SORT_COLUMNS = {"name": _c.name, "state": _c.state, "received": _c.received, "started": _c.started}
_SEARCH_ANYWHERE = (_c.uuid, _c.name, _c.state, _c.worker, _c.args, _c.kwargs, _c.result)
_CHUNK = 500


@dataclass(frozen=True)
class TaskQuery:
    """What Flower's ``/api/tasks`` asks for, already validated.

    Attributes:
        limit: most tasks (None: all).
        offset: tasks skipped first.
        sort_by: a key of ``SORT_COLUMNS`` (None: newest state change first).
        descending: reverse ``sort_by``.
        state, name, worker: exact filters.
        received_start, received_end: bounds on ``received`` (epoch seconds);
            tasks not yet received pass, as in Flower.
        search: the parsed ``search`` query.
    """

    limit: int | None = None
    offset: int = 0
    sort_by: str | None = None
    descending: bool = False
    state: str | None = None
    name: str | None = None
    worker: str | None = None
    received_start: float | None = None
    received_end: float | None = None
    search: search.Node | None = None


def _columns(row: TaskRow) -> dict[str, Any]:
    # Not ``dataclasses.asdict``: its deep copy cost more than the whole fold.
    values = {name: getattr(row, name) for name in _FIELDS}
    for key, unknown in _UNKNOWN.items():
        if values[key] is None:
            values[key] = unknown
    return values


def _task(mapping: Any) -> TaskRow:
    values = {name: mapping[name] for name in _FIELDS}
    for key, unknown in _UNKNOWN.items():
        if values[key] == unknown:
            values[key] = None
    return TaskRow(**values)


async def read_tasks(conn: AsyncConnection, uuids: Iterable[str]) -> dict[str, TaskRow]:
    """The stored rows of ``uuids`` (those that exist)."""
    wanted = list(uuids)
    found: dict[str, TaskRow] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        result = await conn.execute(sa.select(t.celery_tasks).where(_c.uuid.in_(chunk)))
        for mapping in result.mappings():
            found[mapping["uuid"]] = _task(mapping)
    return found


@functools.cache
def _upsert_sql(dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The task upsert, compiled once per dialect: its SQL and parameter order.

    Executed as driver SQL because SQLAlchemy's per-row parameter handling cost
    three times the database's own work for a flood's batches. Both backends
    take the values as they are (no bind processing but SQLite's ``float()``,
    which a REAL column applies anyway).
    """
    stmt = dialects.insert(dialect.name, t.celery_tasks)
    stmt = stmt.on_conflict_do_update(
        index_elements=["uuid"],
        set_={name: stmt.excluded[name] for name in _FIELDS if name != "uuid"},
    )
    compiled = stmt.compile(dialect=dialect, column_keys=_FIELDS)
    return compiled.string, tuple(compiled.positiontup or ())


async def upsert_tasks(conn: AsyncConnection, rows: Iterable[TaskRow]) -> None:
    """Write folded rows whole (the fold already merged them with the stored ones)."""
    values = [_columns(row) for row in rows]
    if not values:
        return
    sql, order = _upsert_sql(conn.dialect)
    await conn.exec_driver_sql(sql, [tuple(v[name] for name in order) for v in values])
    names = sorted({v["name"] for v in values if v["name"]})
    if names:
        ignore = dialects.insert_ignore(conn.dialect.name, t.celery_task_types, "name")
        await conn.execute(ignore, [{"name": name} for name in names])


async def get_task(conn: AsyncConnection, uuid: str) -> TaskRow:
    """One task by id.

    Raises:
        NotFound: no such task.
    """
    mapping = (
        (await conn.execute(sa.select(t.celery_tasks).where(_c.uuid == uuid))).mappings().first()
    )
    if mapping is None:
        raise NotFound(f"Unknown task '{uuid}'")
    return _task(mapping)


async def children_of(conn: AsyncConnection, uuids: list[str]) -> dict[str, list[str]]:
    """Ids of the child tasks of each of ``uuids`` (those with children)."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(uuids), _CHUNK):
        chunk = uuids[start : start + _CHUNK]
        result = await conn.execute(
            sa.select(_c.parent_id, _c.uuid).where(_c.parent_id.in_(chunk)).order_by(_c.uuid)
        )
        for parent, child in result:
            found.setdefault(parent, []).append(child)
    return found


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(column: Any, value: str) -> Any:
    return column.ilike(f"%{_escape_like(value)}%", escape="\\")


def _kwarg_equals(pair: str) -> Any:
    """``key=value`` against a kwargs repr like ``{'key': 'value', 'n': 1}``."""
    key, _, item = pair.partition("=")
    key, item = key.strip(), item.strip()
    patterns = [
        f"{kq}{key}{kq}: {value}{end}"
        for kq in ("'", '"')
        for value in (f"'{item}'", f'"{item}"', item)
        for end in (",", "}")
    ]
    return sa.or_(*(_contains(_c.kwargs, p) for p in patterns))


def _matches(node: search.Node) -> Any:
    if isinstance(node, search.AllOf):
        return sa.and_(*(_matches(child) for child in node.children))
    if isinstance(node, search.AnyOf):
        return sa.or_(*(_matches(child) for child in node.children))
    if node.field == "state":
        return _c.state == node.value.strip().upper()
    if node.field == "kwargs" and "=" in node.value:
        return _kwarg_equals(node.value)
    if node.field is None:
        return sa.or_(*(_contains(column, node.value) for column in _SEARCH_ANYWHERE))
    return _contains(_c[node.field], node.value)


def _conditions(query: TaskQuery) -> list[Any]:
    conditions = []
    if query.state:
        conditions.append(_c.state == query.state.upper())
    if query.name:
        conditions.append(_c.name == query.name)
    if query.worker:
        conditions.append(_c.worker == query.worker)
    if query.received_start is not None:
        conditions.append(sa.or_(_c.received == 0, _c.received >= query.received_start))
    if query.received_end is not None:
        conditions.append(sa.or_(_c.received == 0, _c.received <= query.received_end))
    if query.search is not None:
        conditions.append(_matches(query.search))
    return conditions


async def list_tasks(conn: AsyncConnection, query: TaskQuery) -> list[TaskRow]:
    """One page of tasks, filtered and sorted as Flower's ``/api/tasks`` does."""
    if query.limit is not None and query.limit <= 0:
        return []
    stmt = sa.select(t.celery_tasks).where(*_conditions(query))
    if query.sort_by is None:
        stmt = stmt.order_by(_c.timestamp.desc(), _c.uuid.desc())
    else:
        column = SORT_COLUMNS[query.sort_by]
        if query.descending:
            stmt = stmt.order_by(column.desc(), _c.uuid.desc())
        else:
            stmt = stmt.order_by(column.asc(), _c.uuid.asc())
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    if query.offset > 0:
        stmt = stmt.offset(query.offset)
    result = await conn.execute(stmt)
    return [_task(mapping) for mapping in result.mappings()]


async def prefetched(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(worker, task name, count) of tasks received, not started, without an ETA."""
    result = await conn.execute(
        sa.select(_c.worker, _c.name, sa.func.count())
        .where(_c.state == "RECEIVED", _c.eta.is_(None), _c.worker.is_not(None))
        .group_by(_c.worker, _c.name)
        .order_by(_c.worker, _c.name)
    )
    return [(worker, name, int(count)) for worker, name, count in result]


async def failures_by_worker(conn: AsyncConnection) -> dict[str, int]:
    """Worker -> how many of its stored tasks ended in FAILURE (the dashboard's count).

    Reads only the FAILURE rows (the ``state, timestamp`` index), so its cost grows
    with the failures kept by retention, not with every task.
    """
    result = await conn.execute(
        sa.select(_c.worker, sa.func.count())
        .where(_c.state == "FAILURE", _c.worker.is_not(None))
        .group_by(_c.worker)
    )
    return {worker: int(count) for worker, count in result}


async def task_types(conn: AsyncConnection) -> list[str]:
    """Every task name seen, sorted."""
    result = await conn.execute(
        sa.select(t.celery_task_types.c.name).order_by(t.celery_task_types.c.name)
    )
    return [r[0] for r in result]


async def trim_tasks(conn: AsyncConnection, before: float, chunk: int) -> int:
    """Delete up to ``chunk`` tasks whose state last changed before ``before``."""
    victims = [
        r[0]
        for r in await conn.execute(
            sa.select(_c.uuid).where(_c.timestamp < before).order_by(_c.timestamp).limit(chunk)
        )
    ]
    if victims:
        await conn.execute(sa.delete(t.celery_tasks).where(_c.uuid.in_(victims)))
    return len(victims)
