"""Task runs: HTTP create/read/filter/set_state, and the recorder's batched upserts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace import orchestration
from headrace.errors import NotFound
from headrace.events.recorder import TaskRunFold
from headrace.orchestration import Decision
from headrace.storage import dialect as dialects
from headrace.storage import filters, runs, task_queue
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

_tr = t.task_runs.c
_JSON_DEFAULTS: dict[str, Any] = {
    "empirical_policy": {},
    "tags": [],
    "labels": {},
    "task_inputs": {},
}


def _policy(raw: WireDict | None) -> WireDict:
    policy = {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": 0,
        "retry_delay": 0,
        "retry_jitter_factor": None,
    }
    policy.update(raw or {})
    return policy


def _new_row(run_id: str, fields: WireDict, flow_run_id: str | None, now: datetime) -> WireDict:
    return {
        "id": run_id,
        "created": now,
        "updated": now,
        "name": fields.get("name") or fields.get("task_key") or "task",
        "flow_run_id": flow_run_id,
        "task_key": fields.get("task_key") or "",
        "dynamic_key": str(fields.get("dynamic_key") or ""),
        "cache_key": fields.get("cache_key"),
        "cache_expiration": fields.get("cache_expiration"),
        "task_version": fields.get("task_version"),
        **{c: fields.get(c) or default for c, default in _JSON_DEFAULTS.items()},
        "empirical_policy": _policy(fields.get("empirical_policy")),
        "run_count": fields.get("run_count") or 0,
        "flow_run_run_count": fields.get("flow_run_run_count") or 0,
        "expected_start_time": fields.get("expected_start_time"),
        "next_scheduled_start_time": fields.get("next_scheduled_start_time"),
        "start_time": fields.get("start_time"),
        "end_time": fields.get("end_time"),
        "total_run_time": fields.get("total_run_time") or 0.0,
    }


async def create_task_run(
    conn: AsyncConnection, body: WireDict, now: datetime
) -> tuple[WireDict, bool]:
    """Insert a task run, or return the one with the same (flow run, task key, dynamic key)."""
    flow_run_id = body.get("flow_run_id")
    if flow_run_id is not None:
        existing = await conn.execute(
            sa.select(t.task_runs).where(
                _tr.flow_run_id == flow_run_id,
                _tr.task_key == body["task_key"],
                _tr.dynamic_key == str(body["dynamic_key"]),
            )
        )
        row = existing.first()
        if row is not None:
            return runs.wire_run(row_dict(row), now), False
    run_id = body.get("id") or new_id()
    if body.get("id"):
        found = await conn.execute(sa.select(t.task_runs).where(_tr.id == run_id))
        row = found.first()
        if row is not None:
            return runs.wire_run(row_dict(row), now), False
    state, timing = orchestration.initial_state(body.get("state"), now)
    details = {**state.get("state_details", {}), "task_run_id": run_id}
    if flow_run_id:
        details["flow_run_id"] = flow_run_id
    state, history = runs.state_row({**state, "state_details": details}, "task_run_id", run_id, now)
    new = _new_row(run_id, body, flow_run_id, now)
    labels = dict(body.get("labels") or {})
    if flow_run_id:
        flow_id = await conn.execute(
            sa.select(t.flow_runs.c.flow_id).where(t.flow_runs.c.id == flow_run_id)
        )
        fid = flow_id.scalar()
        if fid is not None:
            labels.setdefault("prefect.flow.id", str(fid))
        labels.setdefault("prefect.flow-run.id", str(flow_run_id))
    new.update(labels=labels, **timing, **runs.current_state_columns(state))
    await conn.execute(sa.insert(t.task_runs), [new])
    await conn.execute(sa.insert(t.task_run_states), [history])
    if task_queue.is_deferred_scheduled(state):
        await task_queue.enqueue(conn, new, state, now)
    return runs.wire_run(new, now), True


async def _row(conn: AsyncConnection, run_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.task_runs).where(_tr.id == run_id))).first()
    if row is None:
        raise NotFound(f"Task run {run_id} not found")
    return row_dict(row)


async def read_task_run(conn: AsyncConnection, run_id: str, now: datetime) -> WireDict:
    return runs.wire_run(await _row(conn, run_id), now)


async def update_task_run(
    conn: AsyncConnection, run_id: str, changes: WireDict, now: datetime
) -> None:
    values = {k: v for k, v in changes.items() if k == "name" and v is not None}
    result = await conn.execute(
        sa.update(t.task_runs).where(_tr.id == run_id).values(**values, updated=now)
    )
    if result.rowcount == 0:
        raise NotFound(f"Task run {run_id} not found")


async def delete_task_run(conn: AsyncConnection, run_id: str) -> None:
    result = await conn.execute(sa.delete(t.task_runs).where(_tr.id == run_id))
    if result.rowcount == 0:
        raise NotFound(f"Task run {run_id} not found")
    await conn.execute(
        sa.delete(t.task_run_states).where(t.task_run_states.c.task_run_id == run_id)
    )
    await task_queue.dequeue(conn, run_id)


def task_run_where(body: WireDict, dialect: str) -> list[Any]:
    from headrace.storage import flow_runs  # mutual filters

    clauses = []
    own = filters.where(filters.TASK_RUN_FIELDS, body.get("task_runs"), dialect, "task_runs")
    if own is not None:
        clauses.append(own)
    run_body = {k: body.get(k) for k in ("flows", "flow_runs", "deployments")}
    if any(run_body.values()):
        run_clauses = flow_runs.flow_run_where(run_body, dialect)
        if run_clauses:
            inner = sa.select(t.flow_runs.c.id).where(*run_clauses)
            clauses.append(_tr.flow_run_id.in_(inner))
    return clauses


async def filter_task_runs(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None, now: datetime
) -> list[WireDict]:
    order = filters.sort_clause(filters.TASK_RUN_SORTS, body.get("sort"), "ID_DESC")
    stmt = sa.select(t.task_runs).where(*task_run_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(*order), limit, offset))
    return [runs.wire_run(row_dict(r), now) for r in rows]


async def count_task_runs(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.task_runs)
    stmt = stmt.where(*task_run_where(body, conn.dialect.name))
    return int((await conn.execute(stmt)).scalar_one())


async def set_task_run_state(
    conn: AsyncConnection, run_id: str, proposed: WireDict, force: bool, now: datetime
) -> tuple[Decision, WireDict | None, WireDict]:
    row = await _row(conn, run_id)
    decision, written = await runs.apply_transition(
        conn,
        t.task_runs,
        t.task_run_states,
        "task_run_id",
        row,
        proposed,
        orchestration.decide_task_run,
        force,
        now,
    )
    after = await _row(conn, run_id) if written is not None else row
    if written is not None and task_queue.is_deferred_scheduled(written):
        await task_queue.enqueue(conn, after, written, now)
    return decision, written, runs.wire_run(after, now)


async def read_states(conn: AsyncConnection, run_id: str) -> list[WireDict]:
    h = t.task_run_states
    rows = await conn.execute(
        sa.select(h).where(h.c.task_run_id == run_id).order_by(h.c.timestamp, h.c.id)
    )
    return [runs.wire_state(row_dict(r)) for r in rows]


async def _adopt_known_keys(
    conn: AsyncConnection, folds: dict[str, TaskRunFold], existing: dict[str, Any]
) -> dict[str, TaskRunFold]:
    """Re-key folds whose (flow run, task key, dynamic key) already has a run.

    The run recorded first keeps its id; later ids for the same key add their
    states to it, as the reference's upsert does.
    """
    keyed = {
        (f.flow_run_id, f.fields.get("task_key"), str(f.fields.get("dynamic_key"))): run_id
        for run_id, f in folds.items()
        if run_id not in existing
        and f.flow_run_id
        and f.fields.get("task_key")
        and f.fields.get("dynamic_key") is not None
    }
    if not keyed:
        return folds
    key = sa.tuple_(_tr.flow_run_id, _tr.task_key, _tr.dynamic_key)
    rows = await conn.execute(
        sa.select(
            _tr.id, _tr.flow_run_id, _tr.task_key, _tr.dynamic_key, _tr.state_timestamp
        ).where(key.in_(list(keyed)))
    )
    out = dict(folds)
    for row in rows:
        new_id = keyed.get((row.flow_run_id, row.task_key, row.dynamic_key))
        if new_id is None or new_id == row.id or new_id not in out:
            continue
        fold = out.pop(new_id)
        for state in fold.states:
            state["state_details"] = {**state["state_details"], "task_run_id": row.id}
        target = out.setdefault(row.id, TaskRunFold(row.id, fold.flow_run_id))
        target.states.extend(fold.states)
        target.fields = {**fold.fields, **target.fields}
        existing[row.id] = row
    return out


async def record(conn: AsyncConnection, folds: dict[str, TaskRunFold], now: datetime) -> None:
    """Apply a batch of folded task-run events: upsert runs, append states (idempotent)."""
    if not folds:
        return
    dialect = conn.dialect.name
    ids = list(folds)
    existing = {
        r.id: r
        for r in await conn.execute(sa.select(_tr.id, _tr.state_timestamp).where(_tr.id.in_(ids)))
    }
    folds = await _adopt_known_keys(conn, folds, existing)
    inserts: list[WireDict] = []
    updates: list[WireDict] = []
    history: list[WireDict] = []
    for run_id, entry in folds.items():
        newest = entry.newest
        for state in entry.states:
            history.append(runs.state_row(state, "task_run_id", run_id, now)[1])
        current = existing.get(run_id)
        if current is None:
            row = _new_row(run_id, entry.fields, entry.flow_run_id, now)
            row.update(runs.current_state_columns(newest))
            inserts.append(row)
        elif current.state_timestamp is None or newest["timestamp"] >= current.state_timestamp:
            values = {
                k: v
                for k, v in entry.fields.items()
                if k not in ("task_key", "dynamic_key") and not (k == "labels" and not v)
            }
            if "empirical_policy" in values:
                values["empirical_policy"] = _policy(values["empirical_policy"])
            updates.append(
                {"_id": run_id, "updated": now, **values, **runs.current_state_columns(newest)}
            )
    if inserts:
        # A run announced under another id for the same (flow run, key, dynamic key)
        # keeps its first id; the newcomer's row is dropped, its states still recorded.
        await conn.execute(dialects.insert_ignore(dialect, t.task_runs), inserts)
    for values in updates:
        run_id = values.pop("_id")
        await conn.execute(sa.update(t.task_runs).where(_tr.id == run_id).values(**values))
    if history:
        await conn.execute(dialects.insert_ignore(dialect, t.task_run_states, "id"), history)
