"""Celery workers: one row each, updated in place by events and by ``inspect`` answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.celery_monitor.fold import WorkerRow
from headrace.storage import dialect as dialects
from headrace.storage import tables as t

_c = t.celery_workers.c
_FIELDS = [f.name for f in dataclasses.fields(WorkerRow)]
_CHUNK = 500


@dataclass(frozen=True)
class StoredWorker:
    """A worker row with the latest ``inspect`` answers (None: never inspected)."""

    row: WorkerRow
    info: dict[str, Any] | None
    info_updated: float | None


def _worker(mapping: Any) -> WorkerRow:
    return WorkerRow(**{name: mapping[name] for name in _FIELDS})


async def read_workers(conn: AsyncConnection, hostnames: Iterable[str]) -> dict[str, WorkerRow]:
    """The stored rows of ``hostnames`` (those that exist)."""
    wanted = list(hostnames)
    found: dict[str, WorkerRow] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        result = await conn.execute(sa.select(t.celery_workers).where(_c.hostname.in_(chunk)))
        for mapping in result.mappings():
            found[mapping["hostname"]] = _worker(mapping)
    return found


async def upsert_workers(conn: AsyncConnection, rows: Iterable[WorkerRow]) -> None:
    """Write folded rows; the ``inspect`` columns are left as they are."""
    # Not ``dataclasses.asdict``: its deep copy is the costly part of a flood's commit.
    values = [{name: getattr(row, name) for name in _FIELDS} for row in rows]
    if not values:
        return
    stmt = dialects.insert(conn.dialect.name, t.celery_workers)
    stmt = stmt.on_conflict_do_update(
        index_elements=["hostname"],
        set_={name: stmt.excluded[name] for name in _FIELDS if name != "hostname"},
    )
    await conn.execute(stmt, values)


async def list_workers(conn: AsyncConnection, hostname: str | None = None) -> list[StoredWorker]:
    """Every worker (or the one named), by hostname."""
    stmt = sa.select(t.celery_workers).order_by(_c.hostname)
    if hostname is not None:
        stmt = stmt.where(_c.hostname == hostname)
    result = await conn.execute(stmt)
    return [StoredWorker(_worker(m), m["info"], m["info_updated"]) for m in result.mappings().all()]


async def save_info(
    conn: AsyncConnection, answers: Mapping[str, dict[str, Any]], now: float
) -> None:
    """Merge ``inspect`` answers (method -> answer, per hostname) into the workers' rows.

    A worker that answered but sent no event yet gets a row of its own.
    """
    if not answers:
        return
    stored = {
        w.row.hostname: w.info or {} for w in await list_workers(conn) if w.row.hostname in answers
    }
    for hostname, answer in answers.items():
        info = {**stored.get(hostname, {}), **answer, "timestamp": now}
        if hostname in stored:
            await conn.execute(
                sa.update(t.celery_workers)
                .where(_c.hostname == hostname)
                .values(info=info, info_updated=now)
            )
        else:
            fresh = dataclasses.asdict(WorkerRow(hostname[:255]))
            await conn.execute(
                dialects.insert_ignore(conn.dialect.name, t.celery_workers, "hostname"),
                [{**fresh, "info": info, "info_updated": now}],
            )


async def trim_workers(conn: AsyncConnection, before: float) -> int:
    """Delete workers not heard from (by event or ``inspect``) since ``before``."""

    def stale(column: Any) -> Any:
        return sa.or_(column.is_(None), column < before)

    result = await conn.execute(
        sa.delete(t.celery_workers).where(
            stale(_c.timestamp), stale(_c.alive_at), stale(_c.info_updated)
        )
    )
    return int(result.rowcount or 0)
