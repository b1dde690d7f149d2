"""The background task-run queue: enqueue, claim, acknowledge, release, expire.

A background run (``task.delay()``) is one row of ``task_run_queue`` from the
moment ``POST /task_runs/`` accepts it until a task worker has started it. A
claim takes the best unclaimed row for a set of task keys in one write
transaction: ``FOR UPDATE SKIP LOCKED`` on Postgres (concurrent claimers skip
each other's rows), and on SQLite the single writer connection plus a
conditional UPDATE. A claimed row carries its holder (the worker's client id)
and a lease; see ``headrace.task_queue`` for who renews and who expires it.

A row is delivered only while its task run is claimable (SCHEDULED or PENDING,
as the task-run recorder last saw it); rows whose run moved on or vanished are
dropped when a claim, a renewal or the expiry pass meets them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import dialect as dialects
from headrace.storage import runs
from headrace.storage import tables as t
from headrace.storage.common import row_dict
from headrace.types import WireDict

_q = t.task_run_queue.c
_tr = t.task_runs.c

RETRY = 0
"""Priority of a retry or a redelivery: served before new runs of the same keys."""
NEW = 1
"""Priority of a run enqueued for the first time."""
CLAIMABLE_STATES = ("SCHEDULED", "PENDING")
"""Run states in which a queued run may (still) be delivered: it has not started."""
_MAX_STALE_PER_CLAIM = 100


def is_deferred_scheduled(state: WireDict | None) -> bool:
    """True for the state ``task.delay()`` / ``apply_async()`` give a background run."""
    if not state or state.get("type") != "SCHEDULED":
        return False
    return (state.get("state_details") or {}).get("deferred") is True


def priority_of(state: WireDict) -> int:
    """A background run coming back for a retry is served before new runs (as the reference)."""
    return RETRY if state.get("name") == "AwaitingRetry" else NEW


def redeliverable(run_state_type: str | None) -> bool:
    """Whether a run whose claim lapsed goes back to the queue (else its row is dropped).

    A run that reached RUNNING (or any later state) has been started by the worker
    that held it: delivering it again would run it twice. A run that no longer
    exists (``None``) has nothing to deliver.
    """
    return run_state_type in CLAIMABLE_STATES


async def enqueue(conn: AsyncConnection, run: WireDict, state: WireDict, now: datetime) -> None:
    """Queue ``run`` for delivery with ``state``, or re-queue it unclaimed.

    Args:
        conn: a write transaction (the one that wrote the run's state).
        run: the task run (``id``, ``task_key``).
        state: the deferred SCHEDULED state the worker receives.
        now: the enqueue time (orders runs of equal priority).
    """
    row = {
        "task_run_id": run["id"],
        "task_key": run["task_key"],
        "priority": priority_of(state),
        "enqueued": now,
        "state": state,
        "deliveries": 0,
    }
    stmt = dialects.insert(conn.dialect.name, t.task_run_queue).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["task_run_id"],
        set_={
            "priority": stmt.excluded.priority,
            "state": stmt.excluded.state,
            "claimed_by": None,
            "claimed_at": None,
            "acked_at": None,
            "lease_until": None,
        },
    )
    await conn.execute(stmt)


async def dequeue(conn: AsyncConnection, run_id: str) -> None:
    """Forget a run (its task run was deleted)."""
    await conn.execute(sa.delete(t.task_run_queue).where(_q.task_run_id == run_id))


async def has_claimable(conn: AsyncConnection, keys: Sequence[str]) -> bool:
    """Whether any unclaimed row waits for one of ``keys`` (a cheap read, no claim)."""
    stmt = sa.select(sa.literal(1)).where(_q.claimed_by.is_(None), _q.task_key.in_(keys)).limit(1)
    return (await conn.execute(stmt)).first() is not None


async def claim(
    conn: AsyncConnection,
    keys: Sequence[str],
    client_id: str,
    now: datetime,
    lease_until: datetime,
) -> WireDict | None:
    """Claim the next run for ``keys``: retries first, then oldest first.

    Args:
        conn: a write transaction.
        keys: the subscriber's task keys.
        client_id: the subscriber's client id (the holder).
        now: the clock.
        lease_until: when the claim lapses unless renewed.

    Returns:
        The task run as the worker receives it (its ``state`` is the queued
        deferred state), or None when nothing is waiting.
    """
    joined = t.task_run_queue.outerjoin(t.task_runs, _tr.id == _q.task_run_id)
    candidate = (
        sa.select(_q.task_run_id, _q.state, _tr.state_type)
        .select_from(joined)
        .where(_q.claimed_by.is_(None), _q.task_key.in_(keys))
        .order_by(_q.priority, _q.enqueued, _q.task_run_id)
        .limit(1)
        # Only the queue row is locked: the recorder keeps writing task runs.
        .with_for_update(of=t.task_run_queue, skip_locked=True)
    )
    for _ in range(_MAX_STALE_PER_CLAIM):
        found = (await conn.execute(candidate)).first()
        if found is None:
            return None
        if found.state_type not in CLAIMABLE_STATES:
            await dequeue(conn, found.task_run_id)
            continue
        taken = await conn.execute(
            sa.update(t.task_run_queue)
            .where(_q.task_run_id == found.task_run_id, _q.claimed_by.is_(None))
            .values(
                claimed_by=client_id,
                claimed_at=now,
                acked_at=None,
                lease_until=lease_until,
                deliveries=_q.deliveries + 1,
            )
        )
        if taken.rowcount == 0:
            continue
        row = (await conn.execute(sa.select(t.task_runs).where(_tr.id == found.task_run_id))).one()
        return _as_delivered(row_dict(row), found.state, now)
    return None


def _as_delivered(run: WireDict, state: WireDict, now: datetime) -> WireDict:
    """The run with the queued state (which names the parameters) as its current one."""
    run.update(
        state=state,
        state_id=state.get("id"),
        state_type=state.get("type"),
        state_name=state.get("name"),
    )
    return runs.wire_run(run, now)


async def ack(
    conn: AsyncConnection, run_id: str, client_id: str, now: datetime, lease_until: datetime
) -> bool:
    """Record that ``client_id`` acknowledged ``run_id``; False if it no longer holds it."""
    result = await conn.execute(
        sa.update(t.task_run_queue)
        .where(_q.task_run_id == run_id, _q.claimed_by == client_id)
        .values(acked_at=now, lease_until=lease_until)
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, run_id: str, client_id: str) -> str | None:
    """Put an unacknowledged run back in the queue, ahead of new runs.

    Returns:
        The run's task key when it was released, None when ``client_id`` did not
        hold it unacknowledged (already acked, expired or deleted).
    """
    result = await conn.execute(
        sa.update(t.task_run_queue)
        .where(_q.task_run_id == run_id, _q.claimed_by == client_id, _q.acked_at.is_(None))
        .values(**_UNCLAIMED)
        .returning(_q.task_key)
    )
    return result.scalar()


_UNCLAIMED: dict[str, Any] = {
    "claimed_by": None,
    "claimed_at": None,
    "acked_at": None,
    "lease_until": None,
    "priority": RETRY,
}


async def renew(
    conn: AsyncConnection, client_id: str, in_flight: str | None, lease_until: datetime
) -> int:
    """Extend the leases ``client_id`` holds; drop the rows of runs it has started.

    Held means acknowledged by ``client_id`` (on any connection: a worker that
    reconnects adopts what it acknowledged before), plus the one run pushed on
    this connection and not yet acknowledged (``in_flight``).

    Returns:
        How many rows ``client_id`` still holds.
    """
    started = ~sa.exists(
        sa.select(sa.literal(1)).where(
            _tr.id == _q.task_run_id, _tr.state_type.in_(CLAIMABLE_STATES)
        )
    )
    await conn.execute(
        sa.delete(t.task_run_queue).where(
            _q.claimed_by == client_id, _q.acked_at.is_not(None), started
        )
    )
    held: sa.ColumnElement[bool] = _q.acked_at.is_not(None)
    if in_flight is not None:
        held = sa.or_(held, _q.task_run_id == in_flight)
    result = await conn.execute(
        sa.update(t.task_run_queue)
        .where(_q.claimed_by == client_id, held)
        .values(lease_until=lease_until)
    )
    return int(result.rowcount)


@dataclass
class Expired:
    """What one expiry pass did."""

    requeued: list[str] = field(default_factory=list)
    """Task keys of the runs put back in the queue (one entry per run)."""
    dropped: int = 0
    """Rows dropped because their run had started or was gone."""
    more: bool = False
    """The pass stopped at its limit; more leases may have lapsed."""


async def expire(conn: AsyncConnection, now: datetime, limit: int = 500) -> Expired:
    """Handle claims whose lease lapsed at ``now``: requeue or drop (see ``redeliverable``)."""
    joined = t.task_run_queue.outerjoin(t.task_runs, _tr.id == _q.task_run_id)
    rows = (
        await conn.execute(
            sa.select(_q.task_run_id, _q.task_key, _tr.state_type)
            .select_from(joined)
            .where(_q.lease_until <= now)
            .order_by(_q.lease_until)
            .limit(limit)
            .with_for_update(of=t.task_run_queue, skip_locked=True)
        )
    ).all()
    back = [r for r in rows if redeliverable(r.state_type)]
    gone = [r.task_run_id for r in rows if not redeliverable(r.state_type)]
    if back:
        await conn.execute(
            sa.update(t.task_run_queue)
            .where(_q.task_run_id.in_([r.task_run_id for r in back]))
            .values(**_UNCLAIMED)
        )
    if gone:
        await conn.execute(sa.delete(t.task_run_queue).where(_q.task_run_id.in_(gone)))
    return Expired([r.task_key for r in back], len(gone), len(rows) == limit)


async def next_expiry(conn: AsyncConnection) -> datetime | None:
    """When the earliest claim lapses (None: nothing is claimed)."""
    return (await conn.execute(sa.select(sa.func.min(_q.lease_until)))).scalar()  # type: ignore[no-any-return]
