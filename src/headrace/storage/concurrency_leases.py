"""Taking and giving back concurrency slots: grants, leases, expiry.

Every grant reads the limits it concerns with their row locks held (Postgres
``FOR UPDATE``, in id order; SQLite has one writer), counts the live leases and
decides with ``orchestration.slots``, so two grants can never both take the
last slot. Nothing here keeps a counter: a lease that expired counts for
nothing from the moment it expires, whether or not its row is deleted yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import HeadraceError, InvalidInput, NotFound
from headrace.orchestration import slots
from headrace.storage import concurrency_limits as limits
from headrace.storage import tables as t
from headrace.storage.common import new_id, row_dict
from headrace.types import WireDict

_cl = t.concurrency_limits.c
_ls = t.concurrency_leases.c
_ll = t.concurrency_lease_limits.c

V1_LEASE = timedelta(days=100 * 365)
"""v1 clients never renew, so their leases last until released (as the reference's)."""


@dataclass(frozen=True)
class Holder:
    type: str
    id: str


@dataclass(frozen=True)
class Grant:
    """The outcome of asking for slots.

    Attributes:
        granted: The slots were taken (or no limit exists: nothing to take).
        limits: ``MinimalConcurrencyLimitResponse`` of every limit found.
        lease_id: The lease holding the slots (None without a lease).
        expires: When that lease expires.
        retry_at: Refused only: when decay or a lease expiry makes room (None:
            only a release can).
    """

    granted: bool
    limits: list[WireDict] = field(default_factory=list)
    lease_id: str | None = None
    expires: datetime | None = None
    retry_at: datetime | None = None


async def limit_views(
    conn: AsyncConnection, rows: list[WireDict], now: datetime
) -> list[slots.LimitView]:
    leased = await limits.leased_slots(conn, [str(r["id"]) for r in rows], now)
    return [limits.view(r, leased.get(str(r["id"]), 0)) for r in rows]


async def next_expiry(
    conn: AsyncConnection, limit_ids: list[str] | None, now: datetime
) -> datetime | None:
    """The earliest expiry of a live lease (on these limits; None: on any)."""
    stmt = sa.select(sa.func.min(_ls.expires)).where(_ls.expires > now)
    if limit_ids is not None:
        stmt = stmt.where(_ls.id.in_(sa.select(_ll.lease_id).where(_ll.limit_id.in_(limit_ids))))
    found: datetime | None = (await conn.execute(stmt)).scalar()
    return found


async def insert_lease(
    conn: AsyncConnection,
    lease_id: str,
    limit_ids: list[str],
    count: int,
    expires: datetime,
    holder: Holder | None,
    now: datetime,
) -> None:
    await conn.execute(
        sa.insert(t.concurrency_leases),
        [
            {
                "id": lease_id,
                "created": now,
                "expires": expires,
                "slots": count,
                "holder_type": holder.type if holder else None,
                "holder_id": holder.id if holder else None,
            }
        ],
    )
    if limit_ids:
        rows = [{"lease_id": lease_id, "limit_id": limit_id} for limit_id in limit_ids]
        await conn.execute(sa.insert(t.concurrency_lease_limits), rows)


async def acquire(
    conn: AsyncConnection,
    names: list[str],
    count: int,
    mode: slots.Mode,
    now: datetime,
    lease_seconds: float | None = None,
    holder: Holder | None = None,
) -> Grant:
    """Take ``count`` slots on every active limit named, all or none.

    With ``lease_seconds`` (mode ``concurrency``) the slots are held by a new
    lease; otherwise they become unleased occupancy (decaying on limits with a
    decay), as ``rate_limit()`` and ``/increment`` take them. Unknown names and
    inactive limits are skipped; no known name grants at once with no limits.

    Raises:
        InvalidInput: ``count`` exceeds an active limit, or a rate limit is asked
            of a limit that does not decay.
    """
    rows = await limits.limit_rows(conn, _cl.name.in_(names), lock=True)
    found = [limits.minimal(r) for r in sorted(rows, key=lambda r: r["name"])]
    if not rows:
        return Grant(True, [], new_id() if lease_seconds is not None else None)
    views = await limit_views(conn, rows, now)
    try:
        slots.check_request(views, count, mode)
    except slots.SlotsError as exc:
        raise InvalidInput(str(exc)) from None
    verdict = slots.judge(views, count, now)
    active = [v for v in views if v.active]
    if not verdict.fits:
        retry_at = verdict.retry_at
        blocked = [v.id for v in active if slots.room_at(v, count, now) != now]
        expiry = await next_expiry(conn, blocked, now)
        if expiry is not None and (retry_at is None or expiry < retry_at):
            retry_at = expiry
        return Grant(False, found, retry_at=retry_at)
    leased = lease_seconds is not None and mode == "concurrency"
    if not leased:
        for v in active:
            await conn.execute(
                sa.update(t.concurrency_limits)
                .where(_cl.id == v.id)
                .values(unleased_slots=slots.add_unleased(v, count, now), unleased_at=now)
            )
    if lease_seconds is None:
        return Grant(True, found)
    lease_id, expires = new_id(), now + timedelta(seconds=lease_seconds)
    # A rate-limit lease links no limit: its slots decay instead, and renewing or
    # releasing it is harmless.
    linked = [v.id for v in active] if leased else []
    await insert_lease(conn, lease_id, linked, count, expires, holder, now)
    return Grant(True, found, lease_id, expires)


async def renew(conn: AsyncConnection, lease_id: str, seconds: float, now: datetime) -> bool:
    """Move a live lease's expiry to ``now + seconds``; False when it is gone or expired."""
    result = await conn.execute(
        sa.update(t.concurrency_leases)
        .where(_ls.id == lease_id, _ls.expires > now)
        .values(expires=now + timedelta(seconds=seconds))
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, lease_ids: list[str]) -> int:
    """Delete leases (expired or not); returns how many existed."""
    if not lease_ids:
        return 0
    await conn.execute(sa.delete(t.concurrency_lease_limits).where(_ll.lease_id.in_(lease_ids)))
    result = await conn.execute(sa.delete(t.concurrency_leases).where(_ls.id.in_(lease_ids)))
    return int(result.rowcount)


async def release_unleased(
    conn: AsyncConnection, names: list[str], count: int, now: datetime
) -> list[WireDict]:
    """Give back unleased occupancy (``/decrement``) on the active limits named."""
    rows = await limits.limit_rows(conn, _cl.name.in_(names), lock=True)
    for v in await limit_views(conn, rows, now):
        if v.active:
            await conn.execute(
                sa.update(t.concurrency_limits)
                .where(_cl.id == v.id)
                .values(unleased_slots=slots.add_unleased(v, -count, now), unleased_at=now)
            )
    return [limits.minimal(r) for r in sorted(rows, key=lambda r: r["name"])]


async def release_holder(conn: AsyncConnection, holder_id: str, limit_ids: list[str]) -> int:
    """Release the leases ``holder_id`` holds on any of the limits (v1 decrement)."""
    if not limit_ids:
        return 0
    stmt = (
        sa.select(_ls.id)
        .join(t.concurrency_lease_limits, _ll.lease_id == _ls.id)
        .where(_ls.holder_id == holder_id, _ll.limit_id.in_(limit_ids))
    )
    ids = sorted({str(i) for i in (await conn.execute(stmt)).scalars()})
    return await release(conn, ids)


async def reset_tag(
    conn: AsyncConnection, tag: str, task_run_ids: list[str], now: datetime
) -> None:
    """Free every slot of the tag's limit; ``task_run_ids`` then hold one slot each (v1 reset).

    Raises:
        NotFound: The tag has no limit.
    """
    rows = await limits.limit_rows(conn, _cl.name == limits.TAG_PREFIX + tag, lock=True)
    if not rows:
        raise NotFound(limits.V1_NOT_FOUND)
    limit_id = str(rows[0]["id"])
    linked = sa.select(_ll.lease_id).where(_ll.limit_id == limit_id)
    await release(conn, [str(i) for i in (await conn.execute(linked)).scalars()])
    await conn.execute(
        sa.update(t.concurrency_limits)
        .where(_cl.id == limit_id)
        .values(unleased_slots=0.0, unleased_at=now, updated=now)
    )
    for run_id in task_run_ids:
        holder = Holder("task_run", run_id)
        await insert_lease(conn, new_id(), [limit_id], 1, now + V1_LEASE, holder, now)


class ZeroLimit(HeadraceError):
    """A v1 tag limit of 0: the task could never run (answered 423 without Retry-After)."""


async def acquire_for_tags(
    conn: AsyncConnection, tags: list[str], task_run_id: str, now: datetime
) -> Grant:
    """One slot on each tag's limit for a task run, held until released (v1 increment).

    Raises:
        ZeroLimit: A tag's limit is 0.
    """
    names = [limits.TAG_PREFIX + tag for tag in tags]
    for row in await limits.limit_rows(conn, _cl.name.in_(names), order=True):
        if row["active"] and row["limit"] == 0:
            tag = row["name"].removeprefix(limits.TAG_PREFIX)
            raise ZeroLimit(
                f'The concurrency limit on tag "{tag}" is 0 and will deadlock '
                "if the task tries to run again."
            )
    holder = Holder("task_run", task_run_id)
    grant = await acquire(conn, names, 1, "concurrency", now, V1_LEASE.total_seconds(), holder)
    # v1 answers name the tag, not the limit.
    found = [{**m, "name": m["name"].removeprefix(limits.TAG_PREFIX)} for m in grant.limits]
    return Grant(grant.granted, found, grant.lease_id, grant.expires, grant.retry_at)


async def release_for_tags(
    conn: AsyncConnection, tags: list[str], task_run_id: str
) -> list[WireDict]:
    """Release the task run's slots on the tags' limits (v1 decrement)."""
    rows = await limits.limit_rows(conn, _cl.name.in_([limits.TAG_PREFIX + t for t in tags]))
    await release_holder(conn, task_run_id, [str(r["id"]) for r in rows])
    return [limits.minimal(r) for r in sorted(rows, key=lambda r: r["name"])]


@dataclass(frozen=True)
class Expired:
    """A lease that expired without being released, as the expiry service logs it."""

    id: str
    expires: datetime
    slots: int
    holder_type: str | None
    holder_id: str | None
    limit_names: list[str]


async def expire(conn: AsyncConnection, now: datetime, batch: int) -> list[Expired]:
    """Delete up to ``batch`` leases whose expiry has passed, earliest first."""
    stmt = sa.select(t.concurrency_leases).where(_ls.expires <= now)
    rows = [row_dict(r) for r in await conn.execute(stmt.order_by(_ls.expires).limit(batch))]
    if not rows:
        return []
    ids = [str(r["id"]) for r in rows]
    names: dict[str, list[str]] = {i: [] for i in ids}
    linked = (
        sa.select(_ll.lease_id, _cl.name)
        .join(t.concurrency_limits, _cl.id == _ll.limit_id)
        .where(_ll.lease_id.in_(ids))
        .order_by(_cl.name)
    )
    for lease_id, name in await conn.execute(linked):
        names[str(lease_id)].append(name)
    await release(conn, ids)
    return [
        Expired(
            str(r["id"]),
            r["expires"],
            r["slots"],
            r["holder_type"],
            None if r["holder_id"] is None else str(r["holder_id"]),
            names[str(r["id"])],
        )
        for r in rows
    ]


async def earliest_expiry(conn: AsyncConnection) -> datetime | None:
    """When the next lease expires (expired ones included), None without leases."""
    found: datetime | None = (await conn.execute(sa.select(sa.func.min(_ls.expires)))).scalar()
    return found
