"""Work pools, their workers, and the scheduled runs workers poll for."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, NotFound
from headrace.storage import deployment_concurrency, filters, runs, work_queues
from headrace.storage import dialect as dialects
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_wp = t.work_pools.c
_wk = t.workers.c
_fr = t.flow_runs.c

DEFAULT_HEARTBEAT_SECONDS = 30
INACTIVITY_HEARTBEAT_MULTIPLE = 3
"""A worker is OFFLINE after missing this many heartbeats (reference foreman default)."""

DEFAULT_QUEUE_DESCRIPTION = "The work pool's default queue."
UPDATABLE = frozenset(
    {"description", "is_paused", "base_job_template", "concurrency_limit", "storage_configuration"}
)
_STORAGE_DEFAULT: WireDict = {
    "bundle_upload_step": None,
    "bundle_execution_step": None,
    "default_result_storage_block_id": None,
}


def worker_status(row: WireDict, now: datetime) -> str:
    interval = row.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT_SECONDS
    horizon = now - timedelta(seconds=interval * INACTIVITY_HEARTBEAT_MULTIPLE)
    return "ONLINE" if row["last_heartbeat_time"] > horizon else "OFFLINE"


async def _workers(conn: AsyncConnection, pool_ids: list[str]) -> list[WireDict]:
    if not pool_ids:
        return []
    stmt = sa.select(t.workers).where(_wk.work_pool_id.in_(pool_ids))
    return [row_dict(r) for r in await conn.execute(stmt)]


async def _wire(conn: AsyncConnection, rows: list[WireDict], now: datetime) -> list[WireDict]:
    ids = [r["id"] for r in rows]
    online = {
        str(w["work_pool_id"])
        for w in await _workers(conn, ids)
        if worker_status(w, now) == "ONLINE"
    }
    limited = [r["id"] for r in rows if r["concurrency_limit"] is not None]
    used: dict[str, int] = {}
    if limited:
        queues = await conn.execute(
            sa.select(t.work_queues.c.id, t.work_queues.c.work_pool_id).where(
                t.work_queues.c.work_pool_id.in_(limited)
            )
        )
        owner = {str(q): str(p) for q, p in queues}
        for queue_id, count in (await work_queues.active_slots(conn, list(owner))).items():
            used[owner[queue_id]] = used.get(owner[queue_id], 0) + count
    out = []
    for row in rows:
        status = "PAUSED" if row["is_paused"] else "READY" if row["id"] in online else "NOT_READY"
        slots = used.get(row["id"], 0) if row["concurrency_limit"] is not None else None
        out.append({**row, "status": status, "active_slots": slots})
    return out


async def _pool_row(conn: AsyncConnection, name: str) -> WireDict:
    row = (await conn.execute(sa.select(t.work_pools).where(_wp.name == name))).first()
    if row is None:
        raise NotFound(f'Work pool "{name}" not found.')
    return row_dict(row)


async def create_pool(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Insert a pool and its ``default`` queue (priority 1). Duplicate names: AlreadyExists."""
    pool_id = new_id()
    row = {
        "id": pool_id,
        "created": now,
        "updated": now,
        "name": body["name"],
        "description": body.get("description"),
        "type": body["type"],
        "base_job_template": body.get("base_job_template") or {},
        "is_paused": bool(body.get("is_paused") or False),
        "concurrency_limit": body.get("concurrency_limit"),
        "storage_configuration": {**_STORAGE_DEFAULT, **(body.get("storage_configuration") or {})},
        "default_queue_id": None,
    }
    try:
        await conn.execute(sa.insert(t.work_pools), [row])
    except IntegrityError:
        raise AlreadyExists(f'Work pool "{body["name"]}" already exists.') from None
    queue = await work_queues.insert_queue(
        conn,
        pool_id,
        {
            "name": work_queues.DEFAULT_QUEUE,
            "description": DEFAULT_QUEUE_DESCRIPTION,
            "priority": 1,
        },
        now,
    )
    await conn.execute(
        sa.update(t.work_pools).where(_wp.id == pool_id).values(default_queue_id=queue["id"])
    )
    row["default_queue_id"] = queue["id"]
    return (await _wire(conn, [row], now))[0]


async def read_pool(conn: AsyncConnection, name: str, now: datetime) -> WireDict:
    return (await _wire(conn, [await _pool_row(conn, name)], now))[0]


async def update_pool(conn: AsyncConnection, name: str, changes: WireDict, now: datetime) -> None:
    values = {k: v for k, v in changes.items() if k in UPDATABLE}
    if values.get("is_paused", False) is None:
        values.pop("is_paused")
    if "base_job_template" in values and values["base_job_template"] is None:
        values.pop("base_job_template")
    if "storage_configuration" in values:
        values["storage_configuration"] = {
            **_STORAGE_DEFAULT,
            **(values["storage_configuration"] or {}),
        }
    result = await conn.execute(
        sa.update(t.work_pools).where(_wp.name == name).values(**values, updated=now)
    )
    if result.rowcount == 0:
        raise NotFound(f'Work pool "{name}" not found.')


async def delete_pool(conn: AsyncConnection, name: str) -> None:
    """Delete a pool with its queues and workers; its deployments lose their queue."""
    pool = await _pool_row(conn, name)
    queues = sa.select(t.work_queues.c.id).where(t.work_queues.c.work_pool_id == pool["id"])
    await conn.execute(
        sa.update(t.deployments)
        .where(t.deployments.c.work_queue_id.in_(queues))
        .values(work_queue_id=None)
    )
    await conn.execute(sa.delete(t.work_queues).where(t.work_queues.c.work_pool_id == pool["id"]))
    await conn.execute(sa.delete(t.workers).where(_wk.work_pool_id == pool["id"]))
    await conn.execute(sa.delete(t.work_pools).where(_wp.id == pool["id"]))


async def filter_pools(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    own = filters.where(
        filters.WORK_POOL_FIELDS, body.get("work_pools"), conn.dialect.name, "work_pools"
    )
    stmt = sa.select(t.work_pools).where(*([own] if own is not None else []))
    rows = await conn.execute(page(stmt.order_by(_wp.name, _wp.id), limit, offset))
    return await _wire(conn, [row_dict(r) for r in rows], now)


async def heartbeat(
    conn: AsyncConnection, pool_name: str, name: str, interval: int | None, now: datetime
) -> str:
    """Upsert the worker ``name`` of the pool as just seen; returns its id."""
    pool = await _pool_row(conn, pool_name)
    stmt = dialects.insert(conn.dialect.name, t.workers).values(
        id=new_id(),
        created=now,
        updated=now,
        work_pool_id=pool["id"],
        name=name,
        last_heartbeat_time=now,
        heartbeat_interval_seconds=interval,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["work_pool_id", "name"],
        set_={"last_heartbeat_time": now, "heartbeat_interval_seconds": interval, "updated": now},
    )
    await conn.execute(stmt)
    found = await conn.execute(
        sa.select(_wk.id).where(_wk.work_pool_id == pool["id"], _wk.name == name)
    )
    return str(found.scalar_one())


async def filter_workers(
    conn: AsyncConnection,
    pool_name: str,
    body: WireDict,
    limit: int | None,
    offset: int | None,
    now: datetime,
) -> list[WireDict]:
    """The pool's workers, most recently seen first; ``status`` is judged at ``now``."""
    pool = await _pool_row(conn, pool_name)
    spec = body.get("workers") or {}
    own = filters.where(filters.WORKER_FIELDS, spec, conn.dialect.name, "workers")
    stmt = sa.select(t.workers).where(_wk.work_pool_id == pool["id"])
    if own is not None:
        stmt = stmt.where(own)
    rows = await conn.execute(stmt.order_by(_wk.last_heartbeat_time.desc(), _wk.id))
    found = [{**row_dict(r), "status": worker_status(row_dict(r), now)} for r in rows]
    wanted = (spec.get("status") or {}).get("any_") if isinstance(spec, dict) else None
    if wanted is not None:
        found = [w for w in found if w["status"] in wanted]
    start = offset or 0
    return found[start : start + limit if limit is not None else None]


async def delete_worker(conn: AsyncConnection, pool_name: str, name: str) -> None:
    pool = await _pool_row(conn, pool_name)
    result = await conn.execute(
        sa.delete(t.workers).where(_wk.work_pool_id == pool["id"], _wk.name == name)
    )
    if result.rowcount == 0:
        raise NotFound(f'Worker "{name}" not found in work pool "{pool_name}".')


async def get_scheduled_flow_runs(
    conn: AsyncConnection,
    pool_name: str,
    queue_names: list[str] | None,
    before: datetime | None,
    after: datetime | None,
    limit: int | None,
    now: datetime,
) -> list[WireDict]:
    """SCHEDULED runs due by ``before`` in the pool's queues, without claiming them.

    Paused pools and queues give nothing; a queue or pool concurrency limit caps the
    runs offered by the slots still free (runs PENDING, RUNNING or CANCELLING hold
    one). Runs come by queue priority, then ``next_scheduled_start_time``. The polled
    queues and their deployments are marked polled (READY).
    """
    pool = await _pool_row(conn, pool_name)
    everything = await work_queues.queue_rows(conn, pool["id"])
    chosen = (
        await work_queues.queue_rows(conn, pool["id"], queue_names) if queue_names else everything
    )
    await work_queues.mark_polled(conn, [q["id"] for q in chosen], now)
    if pool["is_paused"]:
        return []
    cap = 1000 if limit is None else limit
    used = await work_queues.active_slots(conn, [q["id"] for q in everything])
    if pool["concurrency_limit"] is not None:
        cap = min(cap, max(0, pool["concurrency_limit"] - sum(used.values())))
    room = await deployment_concurrency.deployment_room(conn, now)  # deployment concurrency
    full = deployment_concurrency.full_deployments(room)
    offered: list[tuple[int, Any, WireDict, str]] = []
    for queue in chosen:
        if queue["is_paused"] or cap == 0:
            continue
        queue_room = cap
        if queue["concurrency_limit"] is not None:
            queue_room = min(
                queue_room, max(0, queue["concurrency_limit"] - used.get(queue["id"], 0))
            )
        if queue_room == 0:
            continue
        stmt = sa.select(t.flow_runs).where(
            _fr.work_queue_id == queue["id"], _fr.state_type == "SCHEDULED"
        )
        if before is not None:
            stmt = stmt.where(_fr.next_scheduled_start_time <= before)
        if after is not None:
            stmt = stmt.where(_fr.next_scheduled_start_time >= after)
        if full:
            stmt = stmt.where(sa.or_(_fr.deployment_id.is_(None), _fr.deployment_id.not_in(full)))
        stmt = stmt.order_by(_fr.next_scheduled_start_time, _fr.id).limit(queue_room)
        for r in await conn.execute(stmt):
            run = row_dict(r)
            offered.append((queue["priority"], run["next_scheduled_start_time"], run, queue["id"]))
    offered.sort(key=lambda item: (item[0], item[1] or now))
    queue_of = {run["id"]: queue_id for _priority, _due, run, queue_id in offered}
    allowed = deployment_concurrency.within_room([run for _p, _d, run, _q in offered], room)
    return [
        {
            "work_pool_id": pool["id"],
            "work_queue_id": queue_of[run["id"]],
            "flow_run": runs.wire_run(run, now),
        }
        for run in allowed[:cap]
    ]
