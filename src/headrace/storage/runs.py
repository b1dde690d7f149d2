"""What flow runs and task runs share: wire form, state rows and state transitions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.orchestration import Decision, RunView
from headrace.storage.common import new_id
from headrace.types import WireDict

# Columns that are part of the wire form of both run kinds but stored under another name.
_INTERNAL = ("state_timestamp",)


def wire_run(row: WireDict, now: datetime) -> WireDict:
    """A run row as the client's FlowRun/TaskRun model expects it."""
    run = {k: v for k, v in row.items() if k not in _INTERNAL}
    state = run.get("state")
    estimated = float(run.get("total_run_time") or 0.0)
    if run.get("state_type") == "RUNNING" and row.get("state_timestamp"):
        estimated += max(0.0, (now - row["state_timestamp"]).total_seconds())
    run["estimated_run_time"] = estimated
    expected, started = run.get("expected_start_time"), run.get("start_time")
    delta = 0.0
    if expected is not None:
        if started is not None:
            delta = max(0.0, (started - expected).total_seconds())
        elif run.get("state_type") in ("SCHEDULED", "PENDING", None):
            delta = max(0.0, (now - expected).total_seconds())
    run["estimated_start_time_delta"] = delta
    run["state"] = state
    return run


def state_row(
    state: WireDict, run_column: str, run_id: str, stamp: datetime
) -> tuple[WireDict, WireDict]:
    """Give ``state`` an id and return (wire state, history row)."""
    state = dict(state)
    state.setdefault("id", None)
    if state["id"] is None:
        state["id"] = new_id()
    row = {
        "id": state["id"],
        run_column: run_id,
        "type": state["type"],
        "name": state["name"],
        "timestamp": state["timestamp"],
        "message": state.get("message"),
        "data": state.get("data"),
        "state_details": state.get("state_details") or {},
        "created": stamp,
    }
    return state, row


def current_state_columns(state: WireDict) -> WireDict:
    return {
        "state_id": state["id"],
        "state_type": state["type"],
        "state_name": state["name"],
        "state_timestamp": state["timestamp"],
        "state": state,
    }


def wire_state(row: WireDict) -> WireDict:
    """A history row in the client's State shape."""
    return {
        "id": row["id"],
        "type": row["type"],
        "name": row["name"],
        "timestamp": row["timestamp"],
        "message": row["message"],
        "data": row["data"],
        "state_details": row["state_details"],
    }


def run_view(row: WireDict, state: WireDict | None) -> RunView:
    if state is not None and isinstance(state.get("timestamp"), str):
        state = {**state, "timestamp": row["state_timestamp"]}
    return RunView(
        state=state,
        run_count=row["run_count"],
        empirical_policy=row.get("empirical_policy") or {},
        start_time=row.get("start_time"),
        total_run_time=float(row.get("total_run_time") or 0.0),
        infrastructure_pid=row.get("infrastructure_pid"),
        deployment_id=row.get("deployment_id"),
        parent_task_run_id=row.get("parent_task_run_id"),
        flow_run_run_count=row.get("flow_run_run_count") or 0,
    )


@dataclass(frozen=True)
class Planned:
    """A transition decided but not yet written.

    Attributes:
        decision: what the rules decided.
        state: the state to write (with its id), or None when nothing is written.
        history_row: the state-history row for ``state``.
        run_values: the run row's new column values.
    """

    decision: Decision
    state: WireDict | None = None
    history_row: WireDict | None = None
    run_values: WireDict | None = None


def plan_transition(
    run_column: str,
    row: WireDict,
    proposed: WireDict,
    decide: Callable[..., Decision],
    force: bool,
    now: datetime,
) -> Planned:
    """Run the rules for ``proposed`` on ``row``; return what to write (no I/O)."""
    decision = decide(run_view(row, row.get("state")), proposed, force=force, now=now)
    if not decision.write_state or decision.state is None:
        return Planned(decision)
    state = dict(decision.state)
    details = dict(state.get("state_details") or {})
    details[run_column] = row["id"]
    if run_column == "task_run_id" and row.get("flow_run_id"):
        details["flow_run_id"] = row["flow_run_id"]
    if run_column == "flow_run_id" and row.get("parent_task_run_id"):
        details["task_run_id"] = row["parent_task_run_id"]
    state["state_details"] = details
    state.setdefault("timestamp", now)
    state, history_row = state_row(state, run_column, row["id"], now)
    values: dict[str, Any] = {**decision.run_update, **current_state_columns(state), "updated": now}
    return Planned(decision, state, history_row, values)


async def apply_transition(
    conn: AsyncConnection,
    table: sa.Table,
    history: sa.Table,
    run_column: str,
    row: WireDict,
    proposed: WireDict,
    decide: Callable[..., Decision],
    force: bool,
    now: datetime,
) -> tuple[Decision, WireDict | None]:
    """Run the rules for ``proposed`` and persist the outcome.

    Returns the decision and the state as written (with its id), or None when
    nothing was written.
    """
    planned = plan_transition(run_column, row, proposed, decide, force, now)
    await write_transitions(conn, table, history, {row["id"]: planned})
    return planned.decision, planned.state


async def write_transitions(
    conn: AsyncConnection, table: sa.Table, history: sa.Table, planned: dict[str, Planned]
) -> None:
    """Persist planned transitions (keyed by run id): one history insert, grouped updates."""
    writes = {run_id: p for run_id, p in planned.items() if p.run_values is not None}
    if not writes:
        return
    history_rows = [p.history_row for p in writes.values() if p.history_row is not None]
    await conn.execute(sa.insert(history), history_rows)
    if len(writes) == 1:
        ((run_id, only),) = writes.items()
        await conn.execute(
            sa.update(table).where(table.c.id == run_id).values(**only.run_values or {})
        )
        return
    # executemany needs one statement shape: group the updates by the columns they set.
    groups: dict[tuple[str, ...], list[WireDict]] = {}
    for run_id, p in writes.items():
        run_values = p.run_values or {}
        params = {f"v_{k}": v for k, v in run_values.items()}
        params["run_id"] = run_id
        groups.setdefault(tuple(sorted(run_values)), []).append(params)
    for columns, group in groups.items():
        statement = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("run_id"))
            .values({k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in columns})
        )
        await conn.execute(statement, group)
