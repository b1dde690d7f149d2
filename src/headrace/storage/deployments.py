"""Deployments and their schedule rows: upsert, read, update, delete, filter, runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace import parameters
from headrace.errors import NotFound
from headrace.storage import concurrency_limits, deployment_concurrency, filters, runs, work_queues
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_dp = t.deployments.c
_ds = t.deployment_schedules.c
_fr = t.flow_runs.c

# Keys of DeploymentCreate/DeploymentUpdate stored as they are.
FIELDS = (
    "version",
    "version_info",
    "description",
    "paused",
    "concurrency_limit",
    "concurrency_options",
    "enforce_parameter_schema",
    "parameter_openapi_schema",
    "parameters",
    "job_variables",
    "pull_steps",
    "tags",
    "labels",
    "work_queue_name",
    "work_pool_name",
    "path",
    "entrypoint",
    "storage_document_id",
    "infrastructure_document_id",
    "created_by",
    "updated_by",
)
_DEFAULTS: WireDict = {
    "paused": False,
    "enforce_parameter_schema": True,
    # The reference's default when the client sends none: enforcement then accepts
    # any parameters rather than refusing every run for want of a schema.
    "parameter_openapi_schema": {"type": "object", "properties": {}},
    "parameters": {},
    "job_variables": {},
    "tags": [],
    "labels": {},
}
_NOT_NULL = frozenset(_DEFAULTS)
# Wire fields of DeploymentResponse that headrace does not model (versioning).
_UNMODELLED: WireDict = {
    "version_id": None,
    "branch": None,
    "base": None,
    "root": None,
}


def wire_schedule(row: WireDict) -> WireDict:
    return {k: v for k, v in row.items() if k != "cursor"}


def _wire(
    row: WireDict, schedules: list[WireDict], limit: WireDict | None, now: datetime
) -> WireDict:
    status = work_queues.polled_status(False, row["last_polled"], now)
    return {
        **_UNMODELLED,
        **row,
        "pull_steps": row["pull_steps"] or [],
        "schedules": [wire_schedule(s) for s in schedules],
        "status": status,
        # The limit is the v2 limit; the reference always answers None here.
        "concurrency_limit": None,
        "global_concurrency_limit": limit,
    }


async def _wire_rows(conn: AsyncConnection, rows: list[WireDict], now: datetime) -> list[WireDict]:
    by_deployment: dict[str, list[WireDict]] = {r["id"]: [] for r in rows}
    if rows:
        stmt = (
            sa.select(t.deployment_schedules)
            .where(_ds.deployment_id.in_(list(by_deployment)))
            .order_by(_ds.created, _ds.id)
        )
        for s in await conn.execute(stmt):
            by_deployment[str(s.deployment_id)].append(row_dict(s))
    limits = await concurrency_limits.deployment_limits(conn, list(by_deployment), now)
    return [_wire(r, by_deployment[r["id"]], limits.get(r["id"]), now) for r in rows]


async def _row(conn: AsyncConnection, *where: Any) -> WireDict | None:
    row = (await conn.execute(sa.select(t.deployments).where(*where))).first()
    return row_dict(row) if row is not None else None


async def _queue_columns(conn: AsyncConnection, values: WireDict, now: datetime) -> WireDict:
    """The queue id (and name) a deployment's pool/queue names point at."""
    pool, queue = values.get("work_pool_name"), values.get("work_queue_name")
    if pool:
        target = await work_queues.resolve(conn, pool, queue, now)
        return {k: target[k] for k in ("work_queue_id", "work_queue_name")}
    if queue:  # without a pool: the queue of that name in the default agent pool
        target = await work_queues.ensure_poolless_queue(conn, queue, now)
        return {"work_queue_id": target["id"], "work_queue_name": queue}
    return {"work_queue_id": None, "work_queue_name": None}


async def upsert_deployment(
    conn: AsyncConnection, body: WireDict, now: datetime
) -> tuple[WireDict, bool]:
    """Create the deployment, or update the one with the same (flow_id, name).

    An update replaces the schedules and drops the runs they had scheduled.
    Returns ``(deployment, created)``.
    """
    flow = await conn.execute(sa.select(t.flows.c.id).where(t.flows.c.id == body["flow_id"]))
    if flow.first() is None:
        raise NotFound(f"Flow {body['flow_id']} not found")
    values = {k: body[k] for k in FIELDS if k in body}
    values = {k: v for k, v in values.items() if v is not None or k not in _NOT_NULL}
    values["labels"] = {"prefect.flow.id": body["flow_id"], **(values.get("labels") or {})}
    values.update(await _queue_columns(conn, values, now))
    existing = await _row(conn, _dp.flow_id == body["flow_id"], _dp.name == body["name"])
    if existing is None:
        deployment_id = new_id()
        row: WireDict = {c.name: None for c in t.deployments.columns}
        row.update(_DEFAULTS)
        row.update(values, id=deployment_id, created=now, updated=now)
        row.update(name=body["name"], flow_id=body["flow_id"])
        await conn.execute(sa.insert(t.deployments), [row])
    else:
        deployment_id = existing["id"]
        await conn.execute(
            sa.update(t.deployments).where(_dp.id == deployment_id).values(**values, updated=now)
        )
        await _drop_scheduled_runs(conn, deployment_id, auto_only=True)
        await conn.execute(
            sa.delete(t.deployment_schedules).where(_ds.deployment_id == deployment_id)
        )
    await create_schedules(conn, deployment_id, body.get("schedules") or [], now)
    if "concurrency_limit" in body:
        limit = body["concurrency_limit"]
        await concurrency_limits.set_deployment_limit(conn, deployment_id, limit, now)
    return await read_deployment(conn, deployment_id, now), existing is None


async def read_deployment(conn: AsyncConnection, deployment_id: str, now: datetime) -> WireDict:
    row = await _row(conn, _dp.id == deployment_id)
    if row is None:
        raise NotFound("Deployment not found")
    return (await _wire_rows(conn, [row], now))[0]


async def read_deployment_by_name(
    conn: AsyncConnection, flow_name: str, name: str, now: datetime
) -> WireDict:
    flows = sa.select(t.flows.c.id).where(t.flows.c.name == flow_name)
    row = await _row(conn, _dp.flow_id.in_(flows), _dp.name == name)
    if row is None:
        raise NotFound("Deployment not found")
    return (await _wire_rows(conn, [row], now))[0]


async def update_deployment(
    conn: AsyncConnection, deployment_id: str, changes: WireDict, now: datetime
) -> None:
    """Apply a DeploymentUpdate (only the keys sent); pausing drops auto-scheduled runs."""
    existing = await _row(conn, _dp.id == deployment_id)
    if existing is None:
        raise NotFound("Deployment not found")
    values = {k: v for k, v in changes.items() if k in FIELDS}
    values = {k: v for k, v in values.items() if v is not None or k not in _NOT_NULL}
    if changes.get("parameters") is not None:
        enforce = changes.get("enforce_parameter_schema")
        if enforce if enforce is not None else existing["enforce_parameter_schema"]:
            parameters.check(
                changes["parameters"],
                changes.get("parameter_openapi_schema") or existing["parameter_openapi_schema"],
                "updating deployment",
                ignore_required=True,
            )
    if "work_pool_name" in values or "work_queue_name" in values:
        merged = {
            "work_pool_name": existing["work_pool_name"],
            "work_queue_name": existing["work_queue_name"],
            **values,
        }
        values.update(await _queue_columns(conn, merged, now))
    await conn.execute(
        sa.update(t.deployments).where(_dp.id == deployment_id).values(**values, updated=now)
    )
    if "concurrency_limit" in changes:
        limit = changes["concurrency_limit"]
        await concurrency_limits.set_deployment_limit(conn, deployment_id, limit, now)
    if values.get("paused") and not existing["paused"]:
        await _drop_scheduled_runs(conn, deployment_id, auto_only=True)
        await _reset_cursors(conn, sa.true(), deployment_id)
    if changes.get("schedules") is not None:
        await _drop_scheduled_runs(conn, deployment_id, auto_only=True)
        await conn.execute(
            sa.delete(t.deployment_schedules).where(_ds.deployment_id == deployment_id)
        )
        await create_schedules(conn, deployment_id, changes["schedules"], now)


async def delete_deployment(conn: AsyncConnection, deployment_id: str) -> None:
    """Delete a deployment, its schedules and its runs that have not started."""
    result = await conn.execute(sa.delete(t.deployments).where(_dp.id == deployment_id))
    if result.rowcount == 0:
        raise NotFound("Deployment not found")
    await conn.execute(sa.delete(t.deployment_schedules).where(_ds.deployment_id == deployment_id))
    await concurrency_limits.delete_deployment_limit(conn, deployment_id)
    await _drop_scheduled_runs(conn, deployment_id, auto_only=False)


async def _drop_scheduled_runs(conn: AsyncConnection, deployment_id: str, auto_only: bool) -> None:
    """Delete the deployment's SCHEDULED runs that never ran (the scheduler remakes them)."""
    doomed = sa.select(_fr.id).where(
        _fr.deployment_id == deployment_id, _fr.state_type == "SCHEDULED", _fr.run_count == 0
    )
    if auto_only:
        doomed = doomed.where(_fr.auto_scheduled.is_(sa.true()))
    ids = [str(i) for i in (await conn.execute(doomed)).scalars()]
    if ids:
        await conn.execute(
            sa.delete(t.flow_run_states).where(t.flow_run_states.c.flow_run_id.in_(ids))
        )
        await conn.execute(sa.delete(t.flow_runs).where(_fr.id.in_(ids)))


def deployment_where(body: WireDict, dialect: str) -> list[Any]:
    """WHERE clauses for /deployments/filter and /deployments/count bodies."""
    from headrace.storage import flow_runs, flows  # the resources filter each other

    clauses = []
    own = filters.where(filters.DEPLOYMENT_FIELDS, body.get("deployments"), dialect, "deployments")
    if own is not None:
        clauses.append(own)
    if body.get("flows"):
        flow_clause = flows.flow_where({"flows": body["flows"]}, dialect)
        if flow_clause:
            clauses.append(_dp.flow_id.in_(sa.select(t.flows.c.id).where(*flow_clause)))
    run_body = {k: body.get(k) for k in ("flow_runs", "task_runs")}
    if any(run_body.values()):
        run_clauses = flow_runs.flow_run_where(run_body, dialect)
        if run_clauses:
            clauses.append(_dp.id.in_(sa.select(_fr.deployment_id).where(*run_clauses)))
    pool = filters.where(filters.WORK_POOL_FIELDS, body.get("work_pools"), dialect, "work_pools")
    if pool is not None:
        clauses.append(_dp.work_pool_name.in_(sa.select(t.work_pools.c.name).where(pool)))
    for key in ("work_pool_queues", "work_queues"):
        queue = filters.where(filters.WORK_QUEUE_FIELDS, body.get(key), dialect, key)
        if queue is not None:
            clauses.append(_dp.work_queue_id.in_(sa.select(t.work_queues.c.id).where(queue)))
    return clauses


async def filter_deployments(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    order = filters.sort_clause(filters.DEPLOYMENT_SORTS, body.get("sort"), "NAME_ASC")
    stmt = sa.select(t.deployments).where(*deployment_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(*order), limit, offset))
    return await _wire_rows(conn, [row_dict(r) for r in rows], now)


async def count_deployments(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.deployments)
    stmt = stmt.where(*deployment_where(body, conn.dialect.name))
    return int((await conn.execute(stmt)).scalar_one())


# -- schedules ------------------------------------------------------------------


async def _require(conn: AsyncConnection, deployment_id: str) -> None:
    if await _row(conn, _dp.id == deployment_id) is None:
        raise NotFound("Deployment not found")


async def create_schedules(
    conn: AsyncConnection, deployment_id: str, schedules: list[WireDict], now: datetime
) -> list[WireDict]:
    """Add schedule rows (``schedule`` is already validated JSON). A used slug: AlreadyExists."""
    await _require(conn, deployment_id)
    rows = [
        {
            "id": new_id(),
            "created": now,
            "updated": now,
            "deployment_id": deployment_id,
            "schedule": s["schedule"],
            "active": True if s.get("active") is None else s["active"],
            "max_scheduled_runs": s.get("max_scheduled_runs"),
            "parameters": s.get("parameters") or {},
            "slug": s.get("slug"),
            "cursor": None,
        }
        for s in schedules
    ]
    if rows:
        await conn.execute(sa.insert(t.deployment_schedules), rows)
    return [wire_schedule(r) for r in rows]


async def read_schedules(conn: AsyncConnection, deployment_id: str) -> list[WireDict]:
    await _require(conn, deployment_id)
    stmt = sa.select(t.deployment_schedules).where(_ds.deployment_id == deployment_id)
    rows = await conn.execute(stmt.order_by(_ds.created, _ds.id))
    return [wire_schedule(row_dict(r)) for r in rows]


async def update_schedule(
    conn: AsyncConnection, deployment_id: str, schedule_id: str, changes: WireDict, now: datetime
) -> None:
    """Patch one schedule; its not-yet-run auto-scheduled runs are dropped and re-planned."""
    await _require(conn, deployment_id)
    allowed = ("schedule", "active", "max_scheduled_runs", "parameters", "slug")
    values = {k: v for k, v in changes.items() if k in allowed}
    for key in ("schedule", "active", "parameters"):
        if key in values and values[key] is None:
            values.pop(key)
    where = sa.and_(_ds.id == schedule_id, _ds.deployment_id == deployment_id)
    result = await conn.execute(
        sa.update(t.deployment_schedules).where(where).values(**values, cursor=None, updated=now)
    )
    if result.rowcount == 0:
        raise NotFound("Schedule not found")
    await _drop_scheduled_runs(conn, deployment_id, auto_only=True)
    await _reset_cursors(conn, _ds.id != schedule_id, deployment_id)


async def delete_schedule(conn: AsyncConnection, deployment_id: str, schedule_id: str) -> None:
    await _require(conn, deployment_id)
    where = sa.and_(_ds.id == schedule_id, _ds.deployment_id == deployment_id)
    result = await conn.execute(sa.delete(t.deployment_schedules).where(where))
    if result.rowcount == 0:
        raise NotFound("Schedule not found")
    await _drop_scheduled_runs(conn, deployment_id, auto_only=True)
    await _reset_cursors(conn, sa.true(), deployment_id)


async def _reset_cursors(conn: AsyncConnection, which: Any, deployment_id: str) -> None:
    """Dropped runs must be materialised again: forget how far the scheduler got."""
    await conn.execute(
        sa.update(t.deployment_schedules)
        .where(_ds.deployment_id == deployment_id, which)
        .values(cursor=None)
    )


# -- runs -------------------------------------------------------------------------


async def get_scheduled_flow_runs(
    conn: AsyncConnection,
    deployment_ids: list[str],
    before: datetime | None,
    limit: int | None,
    now: datetime,
) -> list[WireDict]:
    """SCHEDULED runs of the deployments due by ``before`` (a runner's poll; no claim).

    A deployment with a concurrency limit (ENQUEUE) offers no more runs than it
    has free slots. Marks the deployments polled, which makes them READY for a minute.
    """
    if not deployment_ids:
        return []
    await conn.execute(
        sa.update(t.deployments).where(_dp.id.in_(deployment_ids)).values(last_polled=now)
    )
    # A deployment at its concurrency limit (ENQUEUE) has nothing to offer.
    room = await deployment_concurrency.deployment_room(conn, now)
    wanted = [d for d in deployment_ids if room.get(d) != 0]
    stmt = sa.select(t.flow_runs).where(
        _fr.deployment_id.in_(wanted), _fr.state_type == "SCHEDULED"
    )
    if before is not None:
        stmt = stmt.where(_fr.next_scheduled_start_time <= before)
    stmt = stmt.order_by(_fr.next_scheduled_start_time, _fr.id)
    found = [row_dict(r) for r in await conn.execute(page(stmt, limit, None))]
    return [runs.wire_run(r, now) for r in deployment_concurrency.within_room(found, room)]


async def flow_run_body(
    conn: AsyncConnection, deployment_id: str, request: WireDict, now: datetime
) -> WireDict:
    """The FlowRunCreate body for a run of the deployment (``create_flow_run`` input).

    Request parameters and job variables override the deployment's; tags add up.
    """
    deployment = await _row(conn, _dp.id == deployment_id)
    if deployment is None:
        raise NotFound("Deployment not found")
    queue: WireDict = {
        "work_queue_id": deployment["work_queue_id"],
        "work_queue_name": deployment["work_queue_name"],
        "work_pool_name": deployment["work_pool_name"],
        "work_pool_id": None,
    }
    if deployment["work_pool_name"]:
        queue = await work_queues.resolve(
            conn,
            deployment["work_pool_name"],
            request.get("work_queue_name") or deployment["work_queue_name"],
            now,
        )
    elif request.get("work_queue_name"):
        queue["work_queue_name"] = request["work_queue_name"]
    tags = list(dict.fromkeys([*(deployment["tags"] or []), *(request.get("tags") or [])]))
    run_parameters = {**(deployment["parameters"] or {}), **(request.get("parameters") or {})}
    enforce = request.get("enforce_parameter_schema")
    if enforce is None:
        enforce = deployment["enforce_parameter_schema"]
    if enforce:
        parameters.check(
            run_parameters, deployment["parameter_openapi_schema"], "creating flow run"
        )
    # Without a state the run is due now (complete_state fills in scheduled_time).
    state = request.get("state") or {"type": "SCHEDULED", "name": "Scheduled"}
    return {
        **{k: request.get(k) for k in ("name", "context", "idempotency_key")},
        "state": state,
        **{k: request.get(k) for k in ("parent_task_run_id", "empirical_policy", "labels")},
        "flow_id": deployment["flow_id"],
        "deployment_id": deployment_id,
        "deployment_version": deployment["version"],
        "parameters": run_parameters,
        "job_variables": {
            **(deployment["job_variables"] or {}),
            **(request.get("job_variables") or {}),
        },
        "tags": tags,
        "infrastructure_document_id": request.get("infrastructure_document_id")
        or deployment["infrastructure_document_id"],
        **queue,
    }
