"""Global concurrency limits (v2) and their two other faces: v1 tag limits and
deployment concurrency limits.

A v1 tag limit is the v2 limit named ``tag:<tag>`` (one record, one id, as the
reference stores it); a deployment's ``concurrency_limit`` is the v2 limit named
``deployment:<id>`` whose ``deployment_id`` column points back at it. Slots are
taken and given back in ``concurrency_leases``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, NotFound
from headrace.orchestration import slots
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_cl = t.concurrency_limits.c
_ls = t.concurrency_leases.c
_ll = t.concurrency_lease_limits.c

TAG_PREFIX = "tag:"
NOT_FOUND = "Concurrency Limit not found"
V1_NOT_FOUND = "Concurrency limit not found"
UPDATABLE = frozenset({"name", "limit", "active", "active_slots", "slot_decay_per_second"})


def _where(id_or_name: str) -> Any:
    """A path segment is an id when it parses as a UUID, else a name (as the reference reads it)."""
    try:
        return _cl.id == str(uuid.UUID(id_or_name))
    except ValueError:
        return _cl.name == id_or_name


async def leased_slots(
    conn: AsyncConnection, limit_ids: list[str], now: datetime
) -> dict[str, int]:
    """Slots held by live leases, per limit id (limits with none are absent)."""
    if not limit_ids:
        return {}
    stmt = (
        sa.select(_ll.limit_id, sa.func.sum(_ls.slots))
        .join(t.concurrency_leases, _ls.id == _ll.lease_id)
        .where(_ll.limit_id.in_(limit_ids), _ls.expires > now)
        .group_by(_ll.limit_id)
    )
    return {str(limit_id): int(total) for limit_id, total in await conn.execute(stmt)}


def view(row: WireDict, leased: int) -> slots.LimitView:
    return slots.LimitView(
        id=str(row["id"]),
        name=row["name"],
        limit=row["limit"],
        active=row["active"],
        decay=float(row["slot_decay_per_second"]),
        leased=leased,
        unleased=float(row["unleased_slots"]),
        unleased_at=row["unleased_at"],
    )


def minimal(row: WireDict) -> WireDict:
    """``MinimalConcurrencyLimitResponse``."""
    return {"id": str(row["id"]), "name": row["name"], "limit": row["limit"]}


def _wire(row: WireDict, leased: int, now: datetime) -> WireDict:
    """``GlobalConcurrencyLimitResponse``."""
    return {
        "id": str(row["id"]),
        "created": row["created"],
        "updated": row["updated"],
        "active": row["active"],
        "name": row["name"],
        "limit": row["limit"],
        "active_slots": slots.active_slots(view(row, leased), now),
        "slot_decay_per_second": float(row["slot_decay_per_second"]),
    }


async def wire_rows(conn: AsyncConnection, rows: list[WireDict], now: datetime) -> list[WireDict]:
    leased = await leased_slots(conn, [str(r["id"]) for r in rows], now)
    return [_wire(r, leased.get(str(r["id"]), 0), now) for r in rows]


async def limit_rows(
    conn: AsyncConnection, where: Any, lock: bool = False, order: bool = False
) -> list[WireDict]:
    """Limit rows matching ``where``; ``lock`` takes their row locks (Postgres) in id order."""
    stmt = sa.select(t.concurrency_limits).where(where)
    if lock or order:
        stmt = stmt.order_by(_cl.id)
    if lock:
        stmt = stmt.with_for_update()
    return [row_dict(r) for r in await conn.execute(stmt)]


async def _one(conn: AsyncConnection, where: Any, missing: str, lock: bool = False) -> WireDict:
    found = await limit_rows(conn, where, lock)
    if not found:
        raise NotFound(missing)
    return found[0]


async def _insert(conn: AsyncConnection, row: WireDict) -> None:
    try:
        await conn.execute(sa.insert(t.concurrency_limits), [row])
    except IntegrityError:
        raise AlreadyExists(f"A concurrency limit named {row['name']!r} already exists.") from None


def _new_row(name: str, limit: int, now: datetime, **values: Any) -> WireDict:
    return {
        "id": new_id(),
        "created": now,
        "updated": now,
        "name": name,
        "limit": limit,
        "active": True,
        "slot_decay_per_second": 0.0,
        "unleased_slots": 0.0,
        "unleased_at": None,
        "deployment_id": None,
        **values,
    }


# -- v2 ---------------------------------------------------------------------------


async def create_limit(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Create a limit; ``active_slots`` starts it with that much unleased occupancy."""
    row = _new_row(
        body["name"],
        body["limit"],
        now,
        active=body.get("active", True),
        slot_decay_per_second=float(body.get("slot_decay_per_second") or 0.0),
        unleased_slots=float(body.get("active_slots") or 0),
        unleased_at=now,
    )
    await _insert(conn, row)
    return (await wire_rows(conn, [row], now))[0]


async def read_limit(conn: AsyncConnection, id_or_name: str, now: datetime) -> WireDict:
    row = await _one(conn, _where(id_or_name), NOT_FOUND)
    return (await wire_rows(conn, [row], now))[0]


async def filter_limits(
    conn: AsyncConnection, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    stmt = sa.select(t.concurrency_limits).order_by(_cl.name)
    rows = [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]
    return await wire_rows(conn, rows, now)


async def update_limit(
    conn: AsyncConnection, id_or_name: str, changes: WireDict, now: datetime
) -> None:
    """Apply ``GlobalConcurrencyLimitUpdate`` keys (only those sent).

    Unleased occupancy is brought up to ``now`` under the old decay before a new
    decay applies. ``active_slots`` sets the unleased occupancy so that the total
    is that number; live leases keep their slots.
    """
    row = await _one(conn, _where(id_or_name), NOT_FOUND, lock=True)
    values = {k: v for k, v in changes.items() if k in UPDATABLE and v is not None}
    leased = (await leased_slots(conn, [str(row["id"])], now)).get(str(row["id"]), 0)
    current = view(row, leased)
    unleased = slots.unleased_now(current, now)
    if "active_slots" in values:
        unleased = slots.unleased_for_total(current, int(values.pop("active_slots")), now)
    if "slot_decay_per_second" in values:
        values["slot_decay_per_second"] = float(values["slot_decay_per_second"])
    values.update(unleased_slots=unleased, unleased_at=now, updated=now)
    try:
        await conn.execute(
            sa.update(t.concurrency_limits).where(_cl.id == row["id"]).values(**values)
        )
    except IntegrityError:
        raise AlreadyExists(
            f"A concurrency limit named {values['name']!r} already exists."
        ) from None


async def _delete(conn: AsyncConnection, limit_id: str) -> None:
    """Delete a limit and its links to leases (the leases keep their other limits)."""
    await conn.execute(sa.delete(t.concurrency_lease_limits).where(_ll.limit_id == limit_id))
    await conn.execute(sa.delete(t.concurrency_limits).where(_cl.id == limit_id))


async def delete_limit(conn: AsyncConnection, id_or_name: str) -> None:
    row = await _one(conn, _where(id_or_name), NOT_FOUND)
    await _delete(conn, str(row["id"]))


# -- v1 tag limits: the v2 limits named tag:<tag> ------------------------------------


async def holders(conn: AsyncConnection, limit_id: str, now: datetime) -> list[str]:
    """Task runs holding a live lease on the limit (the v1 ``active_slots``)."""
    stmt = (
        sa.select(_ls.holder_id)
        .join(t.concurrency_lease_limits, _ll.lease_id == _ls.id)
        .where(_ll.limit_id == limit_id, _ls.expires > now, _ls.holder_type == "task_run")
        .order_by(_ls.created)
    )
    return [str(h) for h in (await conn.execute(stmt)).scalars() if h is not None]


async def _wire_v1(conn: AsyncConnection, row: WireDict, now: datetime) -> WireDict:
    """``ConcurrencyLimit`` (v1)."""
    return {
        "id": str(row["id"]),
        "created": row["created"],
        "updated": row["updated"],
        "tag": row["name"].removeprefix(TAG_PREFIX),
        "concurrency_limit": row["limit"],
        "active_slots": await holders(conn, str(row["id"]), now),
    }


async def upsert_tag_limit(
    conn: AsyncConnection, tag: str, limit: int, now: datetime
) -> tuple[WireDict, bool]:
    """Create the tag's limit, or set the limit of the existing one; ``(limit, created)``."""
    found = await limit_rows(conn, _cl.name == TAG_PREFIX + tag, lock=True)
    if found:
        row = {**found[0], "limit": limit, "updated": now}
        await conn.execute(
            sa.update(t.concurrency_limits)
            .where(_cl.id == row["id"])
            .values(limit=limit, updated=now)
        )
    else:
        row = _new_row(TAG_PREFIX + tag, limit, now)
        await _insert(conn, row)
    return await _wire_v1(conn, row, now), not found


async def read_tag_limit(conn: AsyncConnection, tag: str, now: datetime) -> WireDict:
    row = await _one(conn, _cl.name == TAG_PREFIX + tag, V1_NOT_FOUND)
    return await _wire_v1(conn, row, now)


async def read_tag_limit_by_id(conn: AsyncConnection, limit_id: str, now: datetime) -> WireDict:
    row = await _one(conn, sa.and_(_cl.id == limit_id, _tagged()), V1_NOT_FOUND)
    return await _wire_v1(conn, row, now)


def _tagged() -> Any:
    # startswith on a literal prefix: "tag:" has no LIKE wildcards to escape.
    return _cl.name.startswith(TAG_PREFIX)


async def filter_tag_limits(
    conn: AsyncConnection, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    stmt = sa.select(t.concurrency_limits).where(_tagged()).order_by(_cl.name)
    rows = [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]
    return [await _wire_v1(conn, r, now) for r in rows]


async def delete_tag_limit(conn: AsyncConnection, tag: str | None, limit_id: str | None) -> None:
    where = (
        _cl.name == TAG_PREFIX + tag if tag is not None else sa.and_(_cl.id == limit_id, _tagged())
    )
    row = await _one(conn, where, V1_NOT_FOUND)
    await _delete(conn, str(row["id"]))


# -- deployment limits --------------------------------------------------------------


async def set_deployment_limit(
    conn: AsyncConnection, deployment_id: str, limit: int | None, now: datetime
) -> None:
    """Create, change or (``None``) remove the deployment's concurrency limit."""
    if limit is None:
        await delete_deployment_limit(conn, deployment_id)
        return
    found = await limit_rows(conn, _cl.deployment_id == deployment_id, lock=True)
    if found:
        await conn.execute(
            sa.update(t.concurrency_limits)
            .where(_cl.id == found[0]["id"])
            .values(limit=limit, updated=now)
        )
        return
    row = _new_row(f"deployment:{deployment_id}", limit, now, deployment_id=deployment_id)
    await _insert(conn, row)


async def delete_deployment_limit(conn: AsyncConnection, deployment_id: str) -> None:
    for row in await limit_rows(conn, _cl.deployment_id == deployment_id):
        await _delete(conn, str(row["id"]))


async def deployment_limits(
    conn: AsyncConnection, deployment_ids: list[str], now: datetime
) -> dict[str, WireDict]:
    """The ``global_concurrency_limit`` of each deployment that has one."""
    if not deployment_ids:
        return {}
    rows = await limit_rows(conn, _cl.deployment_id.in_(deployment_ids))
    wired = await wire_rows(conn, rows, now)
    return {str(r["deployment_id"]): w for r, w in zip(rows, wired, strict=True)}
