"""Events: group-commit insert (idempotent by id), filtered reads, counts, retention."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import dialect as dialects
from headrace.storage import tables as t
from headrace.storage.common import row_dict
from headrace.types import WireDict

_ev = t.events.c


def _resource_rows(event: WireDict) -> list[WireDict]:
    rows = {}
    for related in event.get("related") or []:
        rid = related.get("prefect.resource.id")
        role = related.get("prefect.resource.role") or ""
        if rid:
            rows[(rid, role)] = {
                "event_id": event["id"],
                "resource_id": rid[:255],
                "resource_role": role[:64],
                "occurred": event["occurred"],
            }
    return list(rows.values())


async def insert_events(conn: AsyncConnection, events: list[WireDict]) -> set[str]:
    """Insert events, skipping ids already stored. Returns the ids actually inserted."""
    if not events:
        return set()
    rows = [
        {
            "id": e["id"],
            "occurred": e["occurred"],
            "received": e["received"],
            "event": e["event"][:255],
            "resource_id": e["resource"]["prefect.resource.id"][:255],
            "resource": e["resource"],
            "related": e.get("related") or [],
            "payload": e.get("payload") or {},
            "follows": e.get("follows"),
        }
        for e in events
    ]
    # Which ids are already stored decides what is new; with one writer per SQLite
    # file nothing can slip in between. On Postgres a concurrent replica may insert
    # the same id meanwhile: ON CONFLICT keeps the row single, and the event is
    # merely published twice (subscribers drop duplicates by id).
    ids = [r["id"] for r in rows]
    existing: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found = await conn.execute(sa.select(_ev.id).where(_ev.id.in_(chunk)))
        existing.update(str(r[0]) for r in found)
    fresh = [r for r in rows if r["id"] not in existing]
    if fresh:
        await dialects.bulk_insert(conn, t.events, fresh)
    inserted = {r["id"] for r in fresh}
    resources = [r for e in events if e["id"] in inserted for r in _resource_rows(e)]
    if resources:
        await dialects.bulk_insert(conn, t.event_resources, resources)
    return inserted


def _wire(row: Any) -> WireDict:
    event = row_dict(row)
    event.pop("resource_id", None)
    return event


async def query_events(
    conn: AsyncConnection,
    prefilter: dict[str, Any],
    limit: int,
    offset: int = 0,
    ascending: bool = False,
) -> tuple[list[WireDict], int]:
    """Events matching the SQL-expressible part of a filter, newest first by default.

    Returns (page, total count of matches).
    """
    clauses = _clauses(prefilter)
    order = (
        (_ev.occurred.asc(), _ev.id.asc()) if ascending else (_ev.occurred.desc(), _ev.id.desc())
    )
    stmt = sa.select(t.events).where(*clauses).order_by(*order).limit(limit).offset(offset)
    rows = [_wire(r) for r in await conn.execute(stmt)]
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(t.events).where(*clauses))
    ).scalar_one()
    return rows, int(total)


async def events_by_id(conn: AsyncConnection, ids: list[str]) -> list[WireDict]:
    """The stored events among ``ids``, oldest first."""
    stmt = sa.select(t.events).where(_ev.id.in_(ids)).order_by(_ev.occurred, _ev.id)
    return [_wire(r) for r in await conn.execute(stmt)]


def _clauses(p: dict[str, Any]) -> list[Any]:
    clauses: list[Any] = []
    if p.get("since") is not None:
        clauses.append(_ev.occurred >= p["since"])
    if p.get("until") is not None:
        clauses.append(_ev.occurred <= p["until"])
    if p.get("names"):
        clauses.append(_ev.event.in_(p["names"]))
    if p.get("prefixes"):
        clauses.append(sa.or_(*(_ev.event.startswith(x, autoescape=True) for x in p["prefixes"])))
    if p.get("exclude_names"):
        clauses.append(_ev.event.not_in(p["exclude_names"]))
    for prefix in p.get("exclude_prefixes") or []:
        clauses.append(sa.not_(_ev.event.startswith(prefix, autoescape=True)))
    if p.get("resource_ids"):
        clauses.append(_ev.resource_id.in_(p["resource_ids"]))
    if p.get("resource_id_prefixes"):
        clauses.append(
            sa.or_(
                *(_ev.resource_id.startswith(x, autoescape=True) for x in p["resource_id_prefixes"])
            )
        )
    if p.get("event_ids"):
        clauses.append(_ev.id.in_([str(i) for i in p["event_ids"]]))
    er = t.event_resources.c
    for entry in p.get("related") or []:
        related = sa.select(er.event_id)
        if entry.get("ids"):
            related = related.where(er.resource_id.in_(entry["ids"]))
        if entry.get("roles"):
            related = related.where(er.resource_role.in_(entry["roles"]))
        if entry.get("resources_in_roles"):
            pairs = [tuple(pair) for pair in entry["resources_in_roles"]]
            related = related.where(sa.tuple_(er.resource_id, er.resource_role).in_(pairs))
        clauses.append(_ev.id.in_(related))
    return clauses


async def count_by(
    conn: AsyncConnection, prefilter: dict[str, Any], countable: str
) -> list[WireDict]:
    """Counts of matching events grouped by event name or resource id."""
    column = _ev.event if countable == "event" else _ev.resource_id
    stmt = (
        sa.select(
            column.label("value"),
            sa.func.count().label("count"),
            sa.func.min(_ev.occurred).label("start_time"),
            sa.func.max(_ev.occurred).label("end_time"),
        )
        .where(*_clauses(prefilter))
        .group_by(column)
        .order_by(column)
    )
    return [row_dict(r) for r in await conn.execute(stmt)]


# unit -> (SQLite text prefix length of the stored timestamp, Postgres date_trunc unit)
_TRUNCATIONS = {
    "second": (19, "second"),
    "minute": (16, "minute"),
    "hour": (13, "hour"),
    "day": (10, "day"),
    "week": (10, "day"),
}


async def count_by_time(
    conn: AsyncConnection, prefilter: dict[str, Any], unit: str
) -> list[tuple[datetime, int]]:
    """Matching events counted per ``unit`` (week counts come back per day)."""
    length, pg_unit = _TRUNCATIONS[unit]
    if conn.dialect.name == "sqlite":
        bucket: Any = sa.func.substr(_ev.occurred, 1, length)
    else:
        bucket = sa.func.date_trunc(pg_unit, _ev.occurred, "UTC")
    stmt = (
        sa.select(bucket.label("bucket"), sa.func.count().label("n"))
        .where(*_clauses(prefilter))
        .group_by(bucket)
        .order_by(bucket)
    )
    out = []
    for row in await conn.execute(stmt):
        value = row.bucket
        if isinstance(value, str):
            value = datetime.fromisoformat(value.ljust(19, "0")[:10] if length == 10 else value)
            value = value.replace(tzinfo=UTC)
        out.append((value, int(row.n)))
    return out


async def trim_events(conn: AsyncConnection, before: datetime, chunk: int) -> int:
    """Delete up to ``chunk`` events older than ``before`` with their resource rows."""
    victims = [
        r[0]
        for r in await conn.execute(
            sa.select(_ev.id).where(_ev.occurred < before).order_by(_ev.occurred).limit(chunk)
        )
    ]
    if not victims:
        return 0
    er = t.event_resources.c
    await conn.execute(sa.delete(t.event_resources).where(er.event_id.in_(victims)))
    await conn.execute(sa.delete(t.events).where(_ev.id.in_(victims)))
    return len(victims)
