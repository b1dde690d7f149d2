"""Status views of work queues and pools: queue health and the runs holding slots.

``prefect work-queue inspect`` shows a queue's health; ``prefect work-queue slots``
and ``prefect work-pool slots`` show which runs occupy the concurrency slots. A run
holds a slot of its queue (and so of the queue's pool) while it is PENDING, RUNNING
or CANCELLING, the same rule the pool poll applies to concurrency limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import NotFound
from headrace.storage import tables as t
from headrace.storage import work_queues
from headrace.storage.common import row_dict
from headrace.types import WireDict

_wq = t.work_queues.c
_fr = t.flow_runs.c

MAXIMUM_LATE_RUNS = 0
MAXIMUM_SECONDS_SINCE_LAST_POLLED = 60
"""The reference's only health policy: no Late run, and polled within the last minute."""

_SUMMARY_COLUMNS = (
    _fr.id,
    _fr.name,
    _fr.state_type,
    _fr.state_name,
    _fr.start_time,
    _fr.state_timestamp,
)


async def _queue(conn: AsyncConnection, queue_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.work_queues).where(_wq.id == queue_id))).first()
    if row is None:
        raise NotFound(f"Work queue {queue_id} not found")
    return row_dict(row)


async def queue_health(conn: AsyncConnection, queue_id: str, now: datetime) -> WireDict:
    """``WorkQueueStatusDetail``: healthy unless a run in it is Late or polls stopped."""
    queue = await _queue(conn, queue_id)
    late = await conn.execute(
        sa.select(sa.func.count()).where(
            _fr.work_queue_id == queue_id,
            _fr.state_type == "SCHEDULED",
            _fr.state_name == "Late",
        )
    )
    late_runs = int(late.scalar_one())
    last_polled = queue["last_polled"]
    recently_polled = last_polled is not None and now - last_polled <= timedelta(
        seconds=MAXIMUM_SECONDS_SINCE_LAST_POLLED
    )
    return {
        "healthy": late_runs <= MAXIMUM_LATE_RUNS and recently_polled,
        "late_runs_count": late_runs,
        "last_polled": last_polled,
        "health_check_policy": {
            "maximum_late_runs": MAXIMUM_LATE_RUNS,
            "maximum_seconds_since_last_polled": MAXIMUM_SECONDS_SINCE_LAST_POLLED,
        },
    }


def _summary(row: WireDict, now: datetime) -> WireDict:
    """``FlowRunSlotSummary``; ``time_in_current_state`` in seconds."""
    since = row["state_timestamp"]
    return {**row, "time_in_current_state": (now - since).total_seconds() if since else None}


def _holders(queue_id: str) -> sa.Select[Any]:
    return (
        sa.select(*_SUMMARY_COLUMNS)
        .where(_fr.work_queue_id == queue_id, _fr.state_type.in_(work_queues.ACTIVE_STATES))
        .order_by(_fr.id)
    )


def _pages(count: int, limit: int) -> int:
    return (count + limit - 1) // limit if limit > 0 else 0


async def queue_concurrency(
    conn: AsyncConnection, queue_id: str, page: int, limit: int, now: datetime
) -> WireDict:
    """``WorkQueueConcurrencyStatus``: the queue's slot holders, ``limit`` runs a page.

    Args:
        conn: the connection.
        queue_id: the queue.
        page: 1-based page of runs.
        limit: runs per page.
        now: for ``time_in_current_state``.
    """
    queue = await _queue(conn, queue_id)
    count = (await work_queues.active_slots(conn, [queue_id])).get(queue_id, 0)
    stmt = _holders(queue_id).offset((page - 1) * limit).limit(limit)
    runs = [_summary(row_dict(r), now) for r in await conn.execute(stmt)]
    return {
        "active_slots": count,
        "concurrency_limit": queue["concurrency_limit"],
        "flow_runs": runs,
        "count": count,
        "limit": limit,
        "pages": _pages(count, limit),
        "page": page,
    }


async def pool_concurrency(
    conn: AsyncConnection,
    pool_name: str,
    page: int,
    limit: int,
    flow_run_limit: int,
    now: datetime,
) -> WireDict:
    """``WorkPoolConcurrencyStatus``: slot holders by queue, ``limit`` queues a page.

    Args:
        conn: the connection.
        pool_name: the pool.
        page: 1-based page of queues (by priority).
        limit: queues per page.
        flow_run_limit: most runs listed per queue (``flow_run_count`` has them all).
        now: for ``time_in_current_state``.
    """
    found = await conn.execute(sa.select(t.work_pools).where(t.work_pools.c.name == pool_name))
    pool = found.first()
    if pool is None:
        raise NotFound(f'Work pool "{pool_name}" not found.')
    queues = await work_queues.queue_rows(conn, str(pool.id))
    used = await work_queues.active_slots(conn, [q["id"] for q in queues])
    details = []
    for queue in queues[(page - 1) * limit : page * limit]:
        active = used.get(queue["id"], 0)
        runs: list[WireDict] = []
        if active and flow_run_limit:
            stmt = _holders(queue["id"]).limit(flow_run_limit)
            runs = [_summary(row_dict(r), now) for r in await conn.execute(stmt)]
        details.append(
            {
                "queue_id": queue["id"],
                "queue_name": queue["name"],
                "active_slots": active,
                "concurrency_limit": queue["concurrency_limit"],
                "flow_runs": runs,
                "flow_run_count": active,
            }
        )
    return {
        "active_slots": sum(used.values()),
        "concurrency_limit": pool.concurrency_limit,
        "queues": details,
        "count": len(queues),
        "limit": limit,
        "pages": _pages(len(queues), limit),
        "page": page,
    }
