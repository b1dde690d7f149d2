"""Orchestration of task-run state transitions proposed over HTTP.

The 3.9.1 task engine orchestrates itself and reports states as events, so
this path serves ``client.set_task_run_state`` and background (deferred)
task runs. Rules needing other tables stay with the caller: cache lookup and
insertion, tag concurrency slots, and queueing a deferred SCHEDULED run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from headrace.orchestration import bookkeeping, rules, states
from headrace.orchestration.decisions import Decision, Rule, RunView, Transition, run_rules
from headrace.types import StateType, WireDict

_LEAVING_TERMINAL_ABORTED = frozenset({StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED})


def decide_task_run(
    run: RunView,
    proposed: WireDict,
    *,
    force: bool,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """Decide what happens when a client proposes a state for a task run.

    A proposal with ``state_details.deferred`` set is a background task run and
    gets the background rules even when forced, as in the reference server.

    Args:
        run: The task run as currently stored.
        proposed: The StateCreate wire dict from the request.
        force: The request's ``force`` flag; skips every rule.
        now: The server's clock (aware).
        rng: Source of retry jitter; the ``random`` module when ``None``.

    Returns:
        The decision, with the state and run columns to write, if any.

    Raises:
        ValueError: If the proposed type is not a state type.
    """
    transition = Transition.start(run, proposed, now)
    if transition.proposed_details.get("deferred"):
        chosen = _background_rules(rng)
    elif force:
        chosen = ()
    else:
        chosen = _core_rules(rng)
    run_rules(transition, chosen)
    return bookkeeping.finish(transition, "task")


def _core_rules(rng: random.Random | None) -> tuple[Rule, ...]:
    return (
        rules.prevent_duplicate_transitions,
        handle_terminal_state_transitions,
        prevent_running_tasks_from_stopped_flows,
        rules.copy_scheduled_time,
        rules.wait_for_scheduled_time,
        lambda t: retry_failed_tasks(t, rng),
        rename_reruns,
        update_flow_run_tracker,
    )


def _background_rules(rng: random.Random | None) -> tuple[Rule, ...]:
    return (
        rules.prevent_duplicate_transitions,
        rules.prevent_pending_transitions,
        handle_terminal_state_transitions,
        rules.copy_scheduled_time,
        copy_task_parameters_id,
        rules.wait_for_scheduled_time,
        lambda t: retry_failed_tasks(t, rng),
        rename_reruns,
        update_flow_run_tracker,
    )


def handle_terminal_state_transitions(t: Transition) -> None:
    """Guard task runs that are already terminal.

    Leaving a terminal state is allowed (a flow-level retry re-runs its tasks)
    except into CANCELLING, PAUSED or CRASHED, or out of a COMPLETED state whose
    result is stored. Leaving for a non-final state resets run_count so the task
    gets its retries again; re-entering RUNNING in a newer flow-run attempt is
    named ``Retrying``.
    """
    if not states.is_final(t.from_type):
        return
    assert t.initial is not None  # from_type is set
    if t.to_type in _LEAVING_TERMINAL_ABORTED:
        t.abort(f"Run is already {t.initial['type']}.")
        return
    data = t.initial.get("data")
    if t.from_type is StateType.COMPLETED and data and states.has_persisted_result(data):
        t.reject("This run is already completed.")
        return
    if not states.is_final(t.to_type):
        t.provisional_run["run_count"] = 0
    flow_count = t.run.enclosing_flow_run_count
    newer_attempt = flow_count is not None and t.run.flow_run_run_count < flow_count
    if t.to_type is StateType.RUNNING and newer_attempt:
        t.proposed["name"] = "Retrying"


def prevent_running_tasks_from_stopped_flows(t: Transition) -> None:
    """A task may only start RUNNING while its flow run is RUNNING.

    Skipped when the caller did not pass the enclosing flow run's state. A
    paused flow gets its task a ``NotReady`` PAUSED state to wait in.
    """
    flow_state = t.run.enclosing_flow_state
    if t.to_type is not StateType.RUNNING or flow_state is None:
        return
    flow_type = states.state_type(flow_state)
    if flow_type is StateType.PAUSED:
        flow_details = states.details(flow_state)
        not_ready = states.new_state(
            StateType.PAUSED,
            t.now,
            name="NotReady",
            pause_timeout=flow_details.get("pause_timeout"),
            pause_reschedule=bool(flow_details.get("pause_reschedule")),
        )
        reason = (
            "The flow is paused, new tasks can execute after resuming flow"
            f" run: {t.run.flow_run_id}."
        )
        t.reject(reason, state=not_ready)
    elif flow_type is not StateType.RUNNING:
        t.abort("The enclosing flow must be running to begin task execution.")


def copy_task_parameters_id(t: Transition) -> None:
    """Carry ``task_parameters_id`` (where a background task's arguments are
    stored) from SCHEDULED/PENDING onto the next PENDING/RUNNING."""
    if t.from_type not in (StateType.SCHEDULED, StateType.PENDING):
        return
    if t.to_type not in (StateType.PENDING, StateType.RUNNING):
        return
    if not t.proposed_details.get("task_parameters_id"):
        current = states.details(t.initial).get("task_parameters_id")
        t.proposed_details["task_parameters_id"] = current


def retry_failed_tasks(t: Transition, rng: random.Random | None) -> None:
    """Turn a failure into a retry while the task's ``retries`` allow.

    The client can veto with ``state_details.retriable: false``. The delay is
    ``retry_delay`` (for a list, the entry for this attempt, the last entry
    once past its end), jittered by ``retry_jitter_factor`` when set.
    """
    if t.from_type is not StateType.RUNNING or t.to_type is not StateType.FAILED:
        return
    if t.proposed_details.get("retriable") is False:
        return
    retries, retry_delay = rules.retry_settings(t.policy)
    if retries is None or t.run.run_count > retries:
        return
    delay = _retry_delay(retry_delay, t.run.run_count)
    jitter = t.policy.get("retry_jitter_factor")
    if jitter and jitter > 0 and delay > 0:
        uniform = rng.uniform if rng is not None else random.uniform
        delay = _jittered(delay, jitter, uniform)
    retry_state = states.new_state(
        StateType.SCHEDULED,
        t.now,
        name="AwaitingRetry",
        message=t.proposed.get("message"),
        data=t.proposed.get("data"),
        scheduled_time=states.wire_time(t.now + timedelta(seconds=delay)),
    )
    t.reject("Retrying", state=retry_state)


def _retry_delay(retry_delay: Any, run_count: int) -> float:
    if isinstance(retry_delay, list):
        if not retry_delay:
            return 0.0
        # run_count 0 picks index -1, the last delay, as the reference does.
        return float(retry_delay[min(run_count - 1, len(retry_delay) - 1)])
    return float(retry_delay or 0)


def _jittered(average: float, factor: float, uniform: Callable[[float, float], float]) -> float:
    """A random delay around ``average``, at most ``average * (1 + factor)``.

    Draws from an exponential distribution with mean ``average``, clamped so
    the upper bound is ``(1 + factor)`` times the mean and the lower bound
    mirrors its probability mass around the median, keeping the mean near
    ``average`` while spreading retries of many tasks apart.
    """
    upper_multiple = 1 + factor
    lower_multiple = 0.0
    if upper_multiple < 50:  # 2**k overflows the useful float range beyond this
        lower_multiple = math.log2(2**upper_multiple / (2**upper_multiple - 1))
    low_cdf = 1 - math.exp(-lower_multiple)
    high_cdf = 1 - math.exp(-upper_multiple)
    draw = uniform(low_cdf, high_cdf)
    return -math.log(max(1 - draw, 1e-10)) * average


def rename_reruns(t: Transition) -> None:
    """Name a repeated RUNNING ``Retrying`` (after AwaitingRetry) or ``Rerunning``."""
    if t.to_type is not StateType.RUNNING or t.initial is None:
        return
    run_count = t.provisional_run.get("run_count", t.run.run_count)
    if run_count > 0:
        retrying = t.initial.get("name") == "AwaitingRetry"
        t.proposed["name"] = "Retrying" if retrying else "Rerunning"


def update_flow_run_tracker(t: Transition) -> None:
    """Record which flow-run attempt this RUNNING belongs to, when known."""
    count = t.run.enclosing_flow_run_count
    if t.to_type is StateType.RUNNING and count is not None:
        t.provisional_run["flow_run_run_count"] = count
