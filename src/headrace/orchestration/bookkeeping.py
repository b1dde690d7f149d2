"""Run bookkeeping done on every written state, and the final `Decision`.

Whatever the rules decide, a written state updates the run's counters and
times the same way: run_count on entry into RUNNING, start_time on the first
RUNNING, total_run_time when leaving RUNNING, end_time on entering (or leaving)
a terminal state, next_scheduled_start_time around SCHEDULED states.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Literal

from headrace.orchestration import states
from headrace.orchestration.decisions import Decision, RunView, Transition
from headrace.types import StateType, WireDict

RunKind = Literal["flow", "task"]


def finish(transition: Transition, kind: RunKind) -> Decision:
    """Turn a decided transition into a `Decision`, with bookkeeping.

    Args:
        transition: The transition after the rules ran.
        kind: Whether the run is a flow run or a task run.

    Returns:
        The decision; ``run_update`` is empty when nothing is written.
    """
    written = transition.state_to_write
    if written is None:
        current = copy.deepcopy(transition.initial)
        return Decision(transition.status, current, transition.details, False, {})

    if transition.goes_through:
        transition.policy.update(transition.provisional_policy)
    run_update: WireDict = dict(transition.provisional_run) if transition.goes_through else {}
    _link_state(transition.run, written, kind)
    _update_times(transition, written, run_update)
    _count_run(transition, written, kind, run_update)
    for hook in transition.after_write:
        hook(transition, written)
    if transition.policy != transition.run.empirical_policy:
        run_update["empirical_policy"] = transition.policy
    return Decision(transition.status, written, transition.details, True, run_update)


def _link_state(run: RunView, state: WireDict, kind: RunKind) -> None:
    """Point the state's details at its run, as the reference does on write."""
    state_details = state["state_details"]
    if kind == "flow":
        if run.run_id is not None:
            state_details["flow_run_id"] = run.run_id
        if run.parent_task_run_id is not None:
            state_details["task_run_id"] = run.parent_task_run_id
    elif run.run_id is not None:
        state_details["task_run_id"] = run.run_id
        state_details["flow_run_id"] = run.flow_run_id


def _update_times(transition: Transition, state: WireDict, run_update: WireDict) -> None:
    """start_time, end_time, total_run_time and next_scheduled_start_time."""
    run, initial = transition.run, transition.initial
    old_type, new_type = states.state_type(initial), StateType(state["type"])
    stamp: datetime = state["timestamp"]
    start_time = run.start_time

    if new_type is StateType.RUNNING and start_time is None:
        start_time = run_update["start_time"] = stamp
    if states.is_final(old_type) and not states.is_final(new_type):
        run_update["end_time"] = None
    # end_time is set exactly while the run is terminal, so "already has an
    # end_time" is "was already terminal": terminal-to-terminal keeps the first.
    if states.is_final(new_type) and not states.is_final(old_type):
        if start_time is None:
            run_update["start_time"] = stamp
        run_update["end_time"] = stamp

    if initial is not None and old_type is StateType.RUNNING:
        entered = states.parse_time(initial.get("timestamp"))
        if entered is not None:
            spent = (stamp - entered).total_seconds()
            run_update["total_run_time"] = run.total_run_time + spent

    if old_type is StateType.SCHEDULED:
        run_update["next_scheduled_start_time"] = None
    if new_type is StateType.SCHEDULED:
        scheduled = states.detail_time(state, "scheduled_time")
        run_update["next_scheduled_start_time"] = scheduled


def _count_run(
    transition: Transition, state: WireDict, kind: RunKind, run_update: WireDict
) -> None:
    """run_count on entry into RUNNING; flow runs also clear ``resuming``."""
    new_type = StateType(state["type"])
    policy = transition.policy
    base_count = run_update.get("run_count", transition.run.run_count)
    # A flow run resuming from a suspension re-enters RUNNING in a new process;
    # that is the same attempt, not a new one.
    counts = kind == "task" or not policy.get("resuming")
    if new_type is StateType.RUNNING and counts:
        run_update["run_count"] = base_count + 1
    resumed = new_type is StateType.RUNNING or states.is_final(new_type)
    if kind == "flow" and resumed and policy.get("resuming"):
        policy["resuming"] = False


def initial_state(
    proposed: WireDict | None,
    now: datetime,
    *,
    flow_run_id: str | None = None,
    task_run_id: str | None = None,
) -> tuple[WireDict, WireDict]:
    """The first state of a run being created, and the run columns it sets.

    The reference server stores a new run's state with orchestration forced, so
    only bookkeeping applies.

    Args:
        proposed: The StateCreate wire dict sent with the run, or ``None`` for
            the default PENDING "Pending".
        now: The server's clock.
        flow_run_id: Written to ``state_details.flow_run_id`` when given.
        task_run_id: Written to ``state_details.task_run_id`` when given.

    Returns:
        ``(state, run_update)``: the state without ``id``, and the columns
        ``expected_start_time`` plus whichever of ``next_scheduled_start_time``,
        ``start_time``, ``end_time``, ``run_count`` the state implies.

    Raises:
        ValueError: If the proposed type is not a state type.
    """
    state = states.complete_state(proposed or {"type": StateType.PENDING.value}, now)
    state_details = state["state_details"]
    if flow_run_id is not None:
        state_details["flow_run_id"] = flow_run_id
    if task_run_id is not None:
        state_details["task_run_id"] = task_run_id

    type_ = StateType(state["type"])
    run_update: WireDict = {"expected_start_time": now}
    if type_ is StateType.SCHEDULED:
        scheduled = states.detail_time(state, "scheduled_time")
        run_update["expected_start_time"] = scheduled
        run_update["next_scheduled_start_time"] = scheduled
    if type_ is StateType.RUNNING:
        run_update.update(start_time=now, run_count=1)
    if states.is_final(type_):
        run_update.update(start_time=now, end_time=now)
    return state, run_update
