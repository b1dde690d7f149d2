"""Work queues: the named, prioritised lanes of a work pool that workers poll."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_wq = t.work_queues.c
_fr = t.flow_runs.c

POLL_WINDOW = timedelta(seconds=60)
"""A queue (or deployment) polled within this window is READY (reference foreman default)."""

ACTIVE_STATES = ("PENDING", "RUNNING", "CANCELLING")
"""Run states that occupy a pool or queue concurrency slot."""

DEFAULT_QUEUE = "default"
DEFAULT_AGENT_POOL = "default-agent-pool"
"""Where queues created without a pool go (the reference's name and type)."""
UPDATABLE = frozenset(
    {"name", "description", "is_paused", "concurrency_limit", "priority", "last_polled"}
)


def polled_status(is_paused: bool, last_polled: datetime | None, now: datetime) -> str:
    if is_paused:
        return "PAUSED"
    if last_polled is not None and now - last_polled <= POLL_WINDOW:
        return "READY"
    return "NOT_READY"


async def active_slots(conn: AsyncConnection, queue_ids: list[str]) -> dict[str, int]:
    """Runs holding a slot, per queue id (queues with none are absent)."""
    if not queue_ids:
        return {}
    stmt = (
        sa.select(_fr.work_queue_id, sa.func.count())
        .where(_fr.work_queue_id.in_(queue_ids), _fr.state_type.in_(ACTIVE_STATES))
        .group_by(_fr.work_queue_id)
    )
    return {str(queue_id): int(count) for queue_id, count in await conn.execute(stmt)}


async def _wire(conn: AsyncConnection, rows: list[WireDict], now: datetime) -> list[WireDict]:
    pools = {r["work_pool_id"] for r in rows}
    names: dict[str, str] = {}
    if pools:
        found = await conn.execute(
            sa.select(t.work_pools.c.id, t.work_pools.c.name).where(t.work_pools.c.id.in_(pools))
        )
        names = {str(pool_id): name for pool_id, name in found}
    limited = [r["id"] for r in rows if r["concurrency_limit"] is not None]
    slots = await active_slots(conn, limited)
    return [
        {
            **row,
            "filter": None,
            "work_pool_name": names.get(str(row["work_pool_id"])),
            "status": polled_status(row["is_paused"], row["last_polled"], now),
            "active_slots": slots.get(row["id"], 0)
            if row["concurrency_limit"] is not None
            else None,
        }
        for row in rows
    ]


async def pool_id_by_name(conn: AsyncConnection, pool_name: str) -> str:
    found = await conn.execute(sa.select(t.work_pools.c.id).where(t.work_pools.c.name == pool_name))
    pool_id = found.scalar()
    if pool_id is None:
        raise NotFound(f'Work pool "{pool_name}" not found.')
    return str(pool_id)


async def insert_queue(
    conn: AsyncConnection, pool_id: str, body: WireDict, now: datetime
) -> WireDict:
    """Add a queue to a pool; without a priority it goes after the pool's lowest one."""
    priority = body.get("priority")
    if priority is None:
        lowest = await conn.execute(
            sa.select(sa.func.max(_wq.priority)).where(_wq.work_pool_id == pool_id)
        )
        priority = (lowest.scalar() or 0) + 1
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "work_pool_id": pool_id,
        "name": body["name"],
        "description": body.get("description"),
        "is_paused": bool(body.get("is_paused") or False),
        "concurrency_limit": body.get("concurrency_limit"),
        "priority": priority,
        "last_polled": None,
    }
    try:
        await conn.execute(sa.insert(t.work_queues), [row])
    except IntegrityError:
        raise AlreadyExists(f'Work queue "{body["name"]}" already exists in this pool.') from None
    return row


async def create_queue(
    conn: AsyncConnection, pool_name: str, body: WireDict, now: datetime
) -> WireDict:
    row = await insert_queue(conn, await pool_id_by_name(conn, pool_name), body, now)
    return (await _wire(conn, [row], now))[0]


async def create_poolless_queue(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """``POST /work_queues/``: a queue in the default agent pool, made on first use.

    As in the reference, asking for ``default`` while the pool does not exist yet
    answers with the default queue the new pool was made with.
    """
    from headrace.storage import work_pools  # pools create their default queue here

    found = await conn.execute(
        sa.select(t.work_pools.c.id).where(t.work_pools.c.name == DEFAULT_AGENT_POOL)
    )
    pool_id = found.scalar()
    if pool_id is None:
        pool = await work_pools.create_pool(
            conn, {"name": DEFAULT_AGENT_POOL, "type": "prefect-agent"}, now
        )
        if body["name"] == DEFAULT_QUEUE:
            return await read_queue(conn, pool["default_queue_id"], now)
        pool_id = pool["id"]
    row = await insert_queue(conn, str(pool_id), body, now)
    return (await _wire(conn, [row], now))[0]


async def ensure_poolless_queue(conn: AsyncConnection, name: str, now: datetime) -> WireDict:
    """The queue ``name`` of the default agent pool, created (with the pool) if missing.

    Where a deployment or run naming a queue but no pool is sent, as in the reference.
    """
    pool = sa.select(t.work_pools.c.id).where(t.work_pools.c.name == DEFAULT_AGENT_POOL)
    row = await _queue_row(conn, _wq.work_pool_id == pool.scalar_subquery(), _wq.name == name)
    if row is not None:
        return row
    return await create_poolless_queue(conn, {"name": name}, now)


async def read_poolless_queue_by_name(conn: AsyncConnection, name: str, now: datetime) -> WireDict:
    """``GET /work_queues/name/{name}``: the queue in the default agent pool.

    Without that pool (nothing was ever created pool-less) the oldest queue of
    that name in any pool answers, as the reference's lookup does.
    """
    pool = sa.select(t.work_pools.c.id).where(t.work_pools.c.name == DEFAULT_AGENT_POOL)
    pool_id = (await conn.execute(pool)).scalar()
    where = [_wq.name == name]
    if pool_id is not None:
        where.append(_wq.work_pool_id == pool_id)
    stmt = sa.select(t.work_queues).where(*where).order_by(_wq.created, _wq.id).limit(1)
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f'Work queue "{name}" not found.')
    return (await _wire(conn, [row_dict(row)], now))[0]


async def _queue_row(conn: AsyncConnection, *where: Any) -> WireDict | None:
    row = (await conn.execute(sa.select(t.work_queues).where(*where))).first()
    return row_dict(row) if row is not None else None


async def read_queue(conn: AsyncConnection, queue_id: str, now: datetime) -> WireDict:
    row = await _queue_row(conn, _wq.id == queue_id)
    if row is None:
        raise NotFound(f"Work queue {queue_id} not found")
    return (await _wire(conn, [row], now))[0]


async def read_queue_by_name(
    conn: AsyncConnection, pool_name: str, name: str, now: datetime
) -> WireDict:
    pool_id = await pool_id_by_name(conn, pool_name)
    row = await _queue_row(conn, _wq.work_pool_id == pool_id, _wq.name == name)
    if row is None:
        raise NotFound(f'Work queue "{name}" not found in work pool "{pool_name}".')
    return (await _wire(conn, [row], now))[0]


async def runs_in_queue(
    conn: AsyncConnection,
    queue_id: str,
    before: datetime | None,
    limit: int | None,
    now: datetime,
) -> list[WireDict]:
    """``POST /work_queues/{id}/get_runs``: a poll of one queue, returning flow runs.

    It is the pool poll narrowed to the queue, so pauses and concurrency limits
    (pool, queue, deployment) hold as they do for workers, and the queue counts
    as polled.
    """
    from headrace.storage import work_pools  # the pool poll builds on this module

    row = await _queue_row(conn, _wq.id == queue_id)
    if row is None:
        raise NotFound(f"Work queue {queue_id} not found")
    pool = sa.select(t.work_pools.c.name).where(t.work_pools.c.id == row["work_pool_id"])
    pool_name = (await conn.execute(pool)).scalar_one()
    offered = await work_pools.get_scheduled_flow_runs(
        conn, pool_name, [row["name"]], before, None, limit, now
    )
    return [item["flow_run"] for item in offered]


async def queue_rows(
    conn: AsyncConnection, pool_id: str, names: list[str] | None = None
) -> list[WireDict]:
    """The pool's queues by priority; every name asked for must exist."""
    stmt = sa.select(t.work_queues).where(_wq.work_pool_id == pool_id)
    if names:
        stmt = stmt.where(_wq.name.in_(names))
    rows = [row_dict(r) for r in await conn.execute(stmt.order_by(_wq.priority, _wq.name))]
    missing = set(names or []) - {r["name"] for r in rows}
    if missing:
        raise NotFound(f"Work queue {sorted(missing)[0]!r} not found")
    return rows


async def filter_queues(
    conn: AsyncConnection,
    pool_name: str | None,
    body: WireDict,
    limit: int | None,
    offset: int | None,
    now: datetime,
) -> list[WireDict]:
    clauses = []
    if pool_name is not None:
        clauses.append(_wq.work_pool_id == await pool_id_by_name(conn, pool_name))
    spec, prefixes = _split_prefixes(body.get("work_queues"))
    own = filters.where(filters.WORK_QUEUE_FIELDS, spec, conn.dialect.name, "work_queues")
    if own is not None:
        clauses.append(own)
    if prefixes is not None:
        clauses.append(_any_prefix(prefixes))
    stmt = sa.select(t.work_queues).where(*clauses).order_by(_wq.priority, _wq.name, _wq.id)
    rows = [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]
    return await _wire(conn, rows, now)


def _split_prefixes(spec: Any) -> tuple[Any, Any]:
    """Take ``name.startswith_`` out of a WorkQueueFilter: here it is a list of prefixes.

    (``match_work_queues``, behind ``prefect work-queue ls --match``, sends a list;
    the shared filter compiler reads ``startswith_`` as one string.)
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), dict):
        return spec, None
    name = dict(spec["name"])
    prefixes = name.pop("startswith_", None)
    return {**spec, "name": name}, prefixes


def _any_prefix(prefixes: Any) -> Any:
    """Names starting with any of the prefixes, case-insensitively (as the reference)."""
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        raise InvalidInput("work_queues.name.startswith_ must be a list of strings")
    if not prefixes:
        return sa.false()
    escaped = [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in prefixes]
    return sa.or_(*[_wq.name.ilike(f"{p}%", escape="\\") for p in escaped])


async def update_queue(
    conn: AsyncConnection, queue_id: str, changes: WireDict, now: datetime
) -> None:
    values = {k: v for k, v in changes.items() if k in UPDATABLE}
    for key in ("name", "is_paused", "priority"):
        if key in values and values[key] is None:
            raise InvalidInput(f"{key} cannot be null")
    row = await _queue_row(conn, _wq.id == queue_id)
    if row is None:
        raise NotFound(f"Work queue {queue_id} not found")
    if "name" in values and values["name"] != row["name"] and await _is_default(conn, row):
        raise InvalidInput("the default queue of a work pool cannot be renamed")
    await conn.execute(
        sa.update(t.work_queues).where(_wq.id == queue_id).values(**values, updated=now)
    )


async def _is_default(conn: AsyncConnection, row: WireDict) -> bool:
    found = await conn.execute(
        sa.select(t.work_pools.c.default_queue_id).where(t.work_pools.c.id == row["work_pool_id"])
    )
    return str(found.scalar()) == str(row["id"])


async def delete_queue(conn: AsyncConnection, queue_id: str) -> None:
    row = await _queue_row(conn, _wq.id == queue_id)
    if row is None:
        raise NotFound(f"Work queue {queue_id} not found")
    if await _is_default(conn, row):
        raise InvalidInput("the default queue of a work pool cannot be deleted")
    await conn.execute(sa.delete(t.work_queues).where(_wq.id == queue_id))
    await conn.execute(
        sa.update(t.deployments)
        .where(t.deployments.c.work_queue_id == queue_id)
        .values(work_queue_id=None)
    )


async def resolve(
    conn: AsyncConnection, pool_name: str, queue_name: str | None, now: datetime
) -> WireDict:
    """The queue a deployment or run goes to: the named one (created if missing) or the default.

    Returns ``work_pool_id``, ``work_pool_name``, ``work_queue_id``, ``work_queue_name``.
    """
    pool = (
        await conn.execute(sa.select(t.work_pools).where(t.work_pools.c.name == pool_name))
    ).first()
    if pool is None:
        raise NotFound(f'Work pool "{pool_name}" not found.')
    pool_id = str(pool.id)
    if queue_name is None:
        queue = await _queue_row(conn, _wq.id == pool.default_queue_id)
    else:
        queue = await _queue_row(conn, _wq.work_pool_id == pool_id, _wq.name == queue_name)
        if queue is None:
            queue = await insert_queue(conn, pool_id, {"name": queue_name}, now)
    if queue is None:
        raise NotFound(f'Work pool "{pool_name}" has no default queue')
    return {
        "work_pool_id": pool_id,
        "work_pool_name": pool_name,
        "work_queue_id": queue["id"],
        "work_queue_name": queue["name"],
    }


async def mark_polled(conn: AsyncConnection, queue_ids: list[str], now: datetime) -> None:
    """Record a poll on the queues and on the deployments that send runs to them."""
    if not queue_ids:
        return
    await conn.execute(
        sa.update(t.work_queues).where(_wq.id.in_(queue_ids)).values(last_polled=now)
    )
    await conn.execute(
        sa.update(t.deployments)
        .where(t.deployments.c.work_queue_id.in_(queue_ids))
        .values(last_polled=now)
    )
