"""Rules shared by flow runs and task runs.

Each rule takes a `Transition`, checks whether it governs the transition's
(current type, proposed type), and may edit the proposal or settle it.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from headrace.orchestration import states
from headrace.orchestration.decisions import Transition
from headrace.types import StateType, WireDict

_PENDING_GUARDED = frozenset(
    {StateType.PENDING, StateType.CANCELLING, StateType.RUNNING, StateType.CANCELLED}
)


def prevent_duplicate_transitions(t: Transition) -> None:
    """REJECT a proposal that repeats the current state's ``transition_id``.

    A client that lost the response to a set_state retries with the same id;
    answering with the current state makes the retry harmless.
    """
    if t.initial is None:
        return
    current_id = states.details(t.initial).get("transition_id")
    proposed_id = t.proposed_details.get("transition_id")
    if current_id is None or proposed_id is None:
        return
    if str(current_id).lower() == str(proposed_id).lower():
        t.reject("This run has already made this state transition.")


def prevent_pending_transitions(t: Transition) -> None:
    """ABORT a second PENDING: the guard against double submission.

    Workers and runners propose PENDING before starting a run; the one that
    loses the race gets ABORT and skips the run. PENDING to a differently named
    PENDING (``Submitting``, ``InfrastructurePending``) is progress by the same
    submitter and is allowed, keeping the scheduled time and lease.
    """
    if t.from_type not in _PENDING_GUARDED or t.to_type is not StateType.PENDING:
        return
    assert t.initial is not None  # from_type is set
    if (
        t.from_type is StateType.PENDING
        and t.initial.get("name") != t.proposed["name"]
        and t.proposed["name"] != "Pending"
    ):
        current = states.details(t.initial)
        for key in ("scheduled_time", "deployment_concurrency_lease_id"):
            t.proposed_details[key] = current.get(key)
        return
    t.abort(f"This run is in a {t.from_type.value} state and cannot transition to a PENDING state.")


def copy_scheduled_time(t: Transition) -> None:
    """Carry SCHEDULED's ``scheduled_time`` onto the PENDING that follows it,
    so the wait before RUNNING still applies; a time on the proposal wins."""
    if t.from_type is not StateType.SCHEDULED or t.to_type is not StateType.PENDING:
        return
    if not t.proposed_details.get("scheduled_time"):
        t.proposed_details["scheduled_time"] = states.details(t.initial).get("scheduled_time")


def wait_for_scheduled_time(t: Transition) -> None:
    """WAIT a RUNNING proposed before the current state's ``scheduled_time``.

    The delay is whole seconds, rounded to the nearest second as the reference
    does; less than half a second early is let through.
    """
    if t.from_type not in (StateType.SCHEDULED, StateType.PENDING):
        return
    if t.to_type is not StateType.RUNNING:
        return
    scheduled = states.detail_time(t.initial, "scheduled_time")
    if scheduled is None:
        return
    delay_seconds = rounded_seconds(scheduled - t.now)
    if delay_seconds > 0:
        t.wait(delay_seconds, "Scheduled time is in the future")


def rounded_seconds(delay: timedelta) -> int:
    """Whole seconds of a delay: its floor plus its fraction rounded.

    This is the reference's arithmetic; with Python's ``round`` an exact half
    rounds to even, i.e. down (1.5 s gives 1).
    """
    return math.floor(delay.total_seconds()) + round(delay.microseconds / 1_000_000)


def retry_settings(policy: WireDict) -> tuple[Any, Any]:
    """``(retries, retry_delay)`` from an empirical policy.

    Falls back to the deprecated ``max_retries``/``retry_delay_seconds`` when the
    current field is unset or zero, as the reference's policy models do.
    """
    retries = policy.get("retries")
    if not retries and policy.get("max_retries", 0):
        retries = policy["max_retries"]
    retry_delay = policy.get("retry_delay")
    if not retry_delay and policy.get("retry_delay_seconds", 0):
        retry_delay = policy["retry_delay_seconds"]
    return retries, retry_delay
