"""Flow runs: create, read, update, delete, filter, count, state transitions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace import names, orchestration
from headrace.errors import NotFound
from headrace.orchestration import Decision, RunView
from headrace.orchestration.decisions import DeploymentSlots
from headrace.storage import deployment_concurrency, filters, runs
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_fr = t.flow_runs.c

# Keys of FlowRunCreate copied to columns as they are.
_CREATE_COLUMNS = (
    "flow_version",
    "deployment_id",
    "deployment_version",
    "work_queue_name",
    "work_queue_id",
    "work_pool_name",
    "work_pool_id",
    "idempotency_key",
    "parent_task_run_id",
    "infrastructure_document_id",
    "created_by",
)
_JSON_DEFAULTS: dict[str, Any] = {
    "parameters": {},
    "context": {},
    "empirical_policy": {},
    "tags": [],
    "labels": {},
    "job_variables": {},
}
UPDATABLE = frozenset(
    {
        "name",
        "flow_version",
        "parameters",
        "empirical_policy",
        "tags",
        "infrastructure_pid",
        "job_variables",
        "labels",
    }
)


@dataclass(frozen=True)
class Transition:
    """The outcome of a set_state call, with what the caller needs to emit an event."""

    decision: Decision
    run: WireDict
    written: WireDict | None
    previous: WireDict | None
    flow_name: str


def _policy(raw: dict[str, Any] | None) -> dict[str, Any]:
    policy = {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": 0,
        "retry_delay": 0,
        "pause_keys": [],
        "resuming": False,
        "retry_type": None,
    }
    policy.update({k: v for k, v in (raw or {}).items() if v is not None})
    return policy


async def create_flow_run(
    conn: AsyncConnection, body: WireDict, now: datetime
) -> tuple[WireDict, bool]:
    """Insert a flow run (or return the one with the same idempotency key)."""
    flow_id = body["flow_id"]
    key = body.get("idempotency_key")
    if key is not None:
        existing = await conn.execute(
            sa.select(t.flow_runs).where(_fr.flow_id == flow_id, _fr.idempotency_key == key)
        )
        found = existing.first()
        if found is not None:
            return runs.wire_run(row_dict(found), now), False
    await _require_flows(conn, {flow_id})
    row, history = _new_run(body, now)
    await conn.execute(sa.insert(t.flow_runs), [row])
    await conn.execute(sa.insert(t.flow_run_states), [history])
    return runs.wire_run(row, now), True


async def create_flow_runs(
    conn: AsyncConnection, bodies: list[WireDict], now: datetime
) -> list[WireDict]:
    """Insert many runs of one flow in two statements; returns the runs that were new.

    Bodies whose idempotency key already exists for the flow are skipped (the
    scheduler's path: one read for the keys, one multi-row insert per table).
    """
    if not bodies:
        return []
    flow_ids = {b["flow_id"] for b in bodies}
    if len(flow_ids) != 1:
        raise ValueError("create_flow_runs takes runs of one flow")
    flow_id = flow_ids.pop()
    await _require_flows(conn, {flow_id})
    keys = [b["idempotency_key"] for b in bodies if b.get("idempotency_key") is not None]
    taken: set[str] = set()
    if keys:
        found = await conn.execute(
            sa.select(_fr.idempotency_key).where(
                _fr.flow_id == flow_id, _fr.idempotency_key.in_(keys)
            )
        )
        taken = {r[0] for r in found}
    fresh = [_new_run(b, now) for b in bodies if b.get("idempotency_key") not in taken]
    if not fresh:
        return []
    await conn.execute(sa.insert(t.flow_runs), [row for row, _ in fresh])
    await conn.execute(sa.insert(t.flow_run_states), [history for _, history in fresh])
    return [runs.wire_run(row, now) for row, _ in fresh]


async def _require_flows(conn: AsyncConnection, flow_ids: set[str]) -> None:
    found = await conn.execute(sa.select(t.flows.c.id).where(t.flows.c.id.in_(flow_ids)))
    missing = flow_ids - {str(r[0]) for r in found}
    if missing:
        raise NotFound(f"Flow {sorted(missing)[0]} not found")


def _new_run(body: WireDict, now: datetime) -> tuple[WireDict, WireDict]:
    """The row of a new flow run and the history row of its first state."""
    flow_id = body["flow_id"]
    run_id = body.get("id") or new_id()
    state, timing = orchestration.initial_state(body.get("state"), now)
    details = {**state.get("state_details", {}), "flow_run_id": run_id}
    if body.get("parent_task_run_id"):
        details["task_run_id"] = body["parent_task_run_id"]
    state = {**state, "state_details": details}
    state, history = runs.state_row(state, "flow_run_id", run_id, now)
    labels = {"prefect.flow.id": str(flow_id), **(body.get("labels") or {})}
    if body.get("deployment_id"):
        labels["prefect.deployment.id"] = str(body["deployment_id"])
    row: dict[str, Any] = {
        "id": run_id,
        "created": now,
        "updated": now,
        "name": body.get("name") or names.run_name(),
        "flow_id": flow_id,
        "run_count": 0,
        "total_run_time": 0.0,
        "auto_scheduled": bool(body.get("auto_scheduled", False)),
        "infrastructure_pid": None,
        **{c: body.get(c) for c in _CREATE_COLUMNS},
        **{c: body.get(c) or default for c, default in _JSON_DEFAULTS.items()},
        "labels": labels,
        "empirical_policy": _policy(body.get("empirical_policy")),
        "expected_start_time": None,
        "next_scheduled_start_time": None,
        "start_time": None,
        "end_time": None,
        **timing,
        **runs.current_state_columns(state),
    }
    return row, history


async def _row(conn: AsyncConnection, run_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.flow_runs).where(_fr.id == run_id))).first()
    if row is None:
        raise NotFound(f"Flow run {run_id} not found")
    return row_dict(row)


async def read_flow_run(conn: AsyncConnection, run_id: str, now: datetime) -> WireDict:
    return runs.wire_run(await _row(conn, run_id), now)


async def update_flow_run(
    conn: AsyncConnection, run_id: str, changes: WireDict, now: datetime
) -> None:
    values = {k: v for k, v in changes.items() if k in UPDATABLE}
    if "empirical_policy" in values:
        values["empirical_policy"] = _policy(values["empirical_policy"])
    result = await conn.execute(
        sa.update(t.flow_runs).where(_fr.id == run_id).values(**values, updated=now)
    )
    if result.rowcount == 0:
        raise NotFound(f"Flow run {run_id} not found")


async def merge_labels(conn: AsyncConnection, run_id: str, labels: WireDict, now: datetime) -> None:
    row = await _row(conn, run_id)
    merged = {**(row.get("labels") or {}), **labels}
    await conn.execute(
        sa.update(t.flow_runs).where(_fr.id == run_id).values(labels=merged, updated=now)
    )


async def delete_flow_run(conn: AsyncConnection, run_id: str) -> None:
    result = await conn.execute(sa.delete(t.flow_runs).where(_fr.id == run_id))
    if result.rowcount == 0:
        raise NotFound(f"Flow run {run_id} not found")
    await conn.execute(
        sa.delete(t.flow_run_states).where(t.flow_run_states.c.flow_run_id == run_id)
    )


def flow_run_where(body: WireDict, dialect: str) -> list[Any]:
    """WHERE clauses for the filter keys of /flow_runs/filter (and of other resources)."""
    from headrace.storage import flows, task_runs  # mutual filters

    clauses = []
    own = filters.where(filters.FLOW_RUN_FIELDS, body.get("flow_runs"), dialect, "flow_runs")
    if own is not None:
        clauses.append(own)
    if body.get("flows"):
        flow_clause = flows.flow_where({"flows": body["flows"]}, dialect)
        if flow_clause:
            clauses.append(_fr.flow_id.in_(sa.select(t.flows.c.id).where(*flow_clause)))
    if body.get("task_runs"):
        task_clause = task_runs.task_run_where({"task_runs": body["task_runs"]}, dialect)
        if task_clause:
            inner = sa.select(t.task_runs.c.flow_run_id).where(*task_clause)
            clauses.append(_fr.id.in_(inner))
    clauses.extend(related_where(body, dialect))
    return clauses


def related_where(body: WireDict, dialect: str) -> list[Any]:
    """Flow-run clauses for the deployment, work-pool and work-queue filters of a body."""
    clauses: list[Any] = []
    deployment = filters.where(
        filters.DEPLOYMENT_FIELDS, body.get("deployments"), dialect, "deployments"
    )
    if deployment is not None:
        clauses.append(_fr.deployment_id.in_(sa.select(t.deployments.c.id).where(deployment)))
    pool = filters.where(filters.WORK_POOL_FIELDS, body.get("work_pools"), dialect, "work_pools")
    if pool is not None:
        # Runs created by name (POST /flow_runs/ with work_pool_name) may lack the id.
        pools = sa.select(t.work_pools.c.id, t.work_pools.c.name).where(pool).subquery()
        clauses.append(
            sa.or_(
                _fr.work_pool_id.in_(sa.select(pools.c.id)),
                _fr.work_pool_name.in_(sa.select(pools.c.name)),
            )
        )
    for key in ("work_pool_queues", "work_queues"):
        queue = filters.where(filters.WORK_QUEUE_FIELDS, body.get(key), dialect, key)
        if queue is not None:
            clauses.append(_fr.work_queue_id.in_(sa.select(t.work_queues.c.id).where(queue)))
    return clauses


async def filter_flow_runs(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    order = filters.sort_clause(filters.FLOW_RUN_SORTS, body.get("sort"), "ID_DESC")
    stmt = sa.select(t.flow_runs).where(*flow_run_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(*order), limit, offset))
    return [runs.wire_run(row_dict(r), now) for r in rows]


async def count_flow_runs(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.flow_runs)
    stmt = stmt.where(*flow_run_where(body, conn.dialect.name))
    return int((await conn.execute(stmt)).scalar_one())


async def set_flow_run_state(
    conn: AsyncConnection, run_id: str, proposed: WireDict, force: bool, now: datetime
) -> Transition:
    """Apply the flow-run rules to ``proposed`` and persist what they decide."""
    row = await _row(conn, run_id)
    previous = row.get("state")
    slots = await _deployment_slots(conn, row, proposed, force, now)

    def decide(view: RunView, proposed: WireDict, *, force: bool, now: datetime) -> Decision:
        view = view if slots is None else replace(view, deployment_slots=slots)
        return orchestration.decide_flow_run(view, proposed, force=force, now=now)

    decision, written = await runs.apply_transition(
        conn, t.flow_runs, t.flow_run_states, "flow_run_id", row, proposed, decide, force, now
    )
    if decision.leases:
        await deployment_concurrency.apply_actions(conn, decision.leases, run_id, now)
    after = await _row(conn, run_id) if written is not None else row
    if written is not None and row.get("parent_task_run_id"):
        await _mirror_to_parent_task(conn, row, written, now)
    keyset = (written or {}).get("state_details", {}).get("run_input_keyset")
    if written is not None and written["type"] == "PAUSED" and keyset:
        from headrace.storage import flow_run_inputs  # input belongs to the run

        await flow_run_inputs.delete_keys(conn, run_id, list(keyset.values()))
    flow = await conn.execute(sa.select(t.flows.c.name).where(t.flows.c.id == row["flow_id"]))
    flow_name = flow.scalar() or ""
    return Transition(decision, runs.wire_run(after, now), written, previous, flow_name)


async def set_flow_run_states(
    conn: AsyncConnection,
    run_ids: list[str],
    propose: Callable[[WireDict], WireDict | None],
    now: datetime,
) -> list[Transition]:
    """Apply the flow-run rules to one proposal per run, in a few statements.

    The services' bulk transitions (Late, ...): ``propose`` sees each run's row
    as it is inside this transaction and returns the state to propose, or None
    to leave the run alone (unknown runs are skipped). Proposals that take a
    deployment slot, and subflows (whose parent task mirrors them), go through
    ``set_flow_run_state`` one by one.
    """
    if not run_ids:
        return []
    # Locked on Postgres so a transition committed meanwhile is seen, not overwritten.
    stmt = sa.select(t.flow_runs).where(_fr.id.in_(run_ids)).with_for_update()
    rows = {str(r.id): row_dict(r) for r in await conn.execute(stmt)}
    flow_ids = sorted({str(row["flow_id"]) for row in rows.values()})
    names_result = await conn.execute(
        sa.select(t.flows.c.id, t.flows.c.name).where(t.flows.c.id.in_(flow_ids))
    )
    flow_names = {str(flow_id): name for flow_id, name in names_result}
    planned: dict[str, runs.Planned] = {}
    transitions: list[Transition] = []
    for run_id in run_ids:
        row = rows.get(run_id)
        proposed = None if row is None else propose(row)
        if row is None or proposed is None:
            continue
        if row.get("parent_task_run_id") or proposed.get("type") in (
            "PENDING",
            "RUNNING",
            "PAUSED",
        ):
            transitions.append(await set_flow_run_state(conn, run_id, proposed, False, now))
            continue
        planned[run_id] = runs.plan_transition(
            "flow_run_id", row, proposed, orchestration.decide_flow_run, False, now
        )
    await runs.write_transitions(conn, t.flow_runs, t.flow_run_states, planned)
    for run_id, p in planned.items():
        row = rows[run_id]
        after = row if p.run_values is None else {**row, **p.run_values}
        name = flow_names.get(str(row["flow_id"]), "")
        transitions.append(
            Transition(p.decision, runs.wire_run(after, now), p.state, row.get("state"), name)
        )
    return transitions


async def _deployment_slots(
    conn: AsyncConnection, row: WireDict, proposed: WireDict, force: bool, now: datetime
) -> DeploymentSlots | None:
    """The run's deployment concurrency limit, when this proposal may take or keep a slot."""
    if force or not row.get("deployment_id") or proposed.get("type") not in ("PENDING", "RUNNING"):
        return None
    details = (row.get("state") or {}).get("state_details") or {}
    lease_id = details.get("deployment_concurrency_lease_id")
    return await deployment_concurrency.deployment_slots(
        conn, str(row["deployment_id"]), None if lease_id is None else str(lease_id), now
    )


async def _mirror_to_parent_task(
    conn: AsyncConnection, row: WireDict, state: WireDict, now: datetime
) -> None:
    """A subflow's tracking task run in the parent follows the subflow's state."""
    from headrace.storage import task_runs  # the two run kinds reference each other

    details = {**state["state_details"], "child_flow_run_id": row["id"]}
    details.pop("task_run_id", None)
    copy = {k: state[k] for k in ("type", "name", "message", "data")}
    copy["state_details"] = details
    # A parent tracking task that was never recorded has nothing to mirror onto.
    with contextlib.suppress(NotFound):
        await task_runs.set_task_run_state(conn, row["parent_task_run_id"], copy, True, now)


async def read_states(conn: AsyncConnection, run_id: str) -> list[WireDict]:
    h = t.flow_run_states
    rows = await conn.execute(
        sa.select(h).where(h.c.flow_run_id == run_id).order_by(h.c.timestamp, h.c.id)
    )
    return [runs.wire_state(row_dict(r)) for r in rows]


async def read_state(conn: AsyncConnection, state_id: str) -> WireDict:
    h = t.flow_run_states
    row = (await conn.execute(sa.select(h).where(h.c.id == state_id))).first()
    if row is None:
        raise NotFound(f"Flow run state {state_id} not found")
    return runs.wire_state(row_dict(row))


async def flow_name(conn: AsyncConnection, flow_id: str) -> str:
    result = await conn.execute(sa.select(t.flows.c.name).where(t.flows.c.id == flow_id))
    return result.scalar() or ""
