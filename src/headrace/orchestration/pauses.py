"""Flow-run rules for entering and leaving PAUSED.

A pause is identified by its ``pause_key``; the keys that already fired in
this attempt live in ``empirical_policy.pause_keys``, so a flow re-executed
from the top skips pauses it already passed. ``empirical_policy.resuming``
marks a run leaving a pause: its next RUNNING is the same attempt and does not
count as a new run.
"""

from __future__ import annotations

import uuid

from headrace.orchestration import states
from headrace.orchestration.decisions import Transition
from headrace.types import StateType, WireDict

_LEAVABLE_TO = frozenset({StateType.RUNNING, StateType.SCHEDULED, StateType.CANCELLING})


def _verb(t: Transition) -> str:
    return "suspend" if t.proposed["name"] == "Suspended" else "pause"


def handle_pausing_flows(t: Transition) -> None:
    """Allow PAUSED only from RUNNING, once per ``pause_key``.

    A suspension (``pause_reschedule``) ends the process and needs a deployment
    to start the run again, and subflows cannot be suspended.
    """
    if t.to_type is not StateType.PAUSED:
        return
    verb = _verb(t)
    if t.initial is None:
        t.abort(f"Cannot {verb} flows with no state.")
        return
    if t.from_type is not StateType.RUNNING:
        t.reject(f"Cannot {verb} flows that are not currently running.")
        return
    # A pause without a key can never repeat, so it gets a fresh one.
    key = t.proposed_details.get("pause_key") or str(uuid.uuid4())
    if key in (t.policy.get("pause_keys") or []):
        t.reject(f"This {verb} has already fired.")
        return
    if t.proposed_details.get("pause_reschedule"):
        if t.run.parent_task_run_id is not None:
            t.abort(f"Cannot {verb} subflows.")
            return
        if t.run.deployment_id is None:
            t.abort(f"Cannot {verb} flows without a deployment.")
            return
    t.after_write.append(lambda tr, _state: _record_pause_key(tr, key))


def _record_pause_key(t: Transition, key: str) -> None:
    keys = list(t.policy.get("pause_keys") or [])
    if key not in keys:
        keys.append(key)
    t.policy["pause_keys"] = keys


def handle_resuming_paused_flows(t: Transition) -> None:
    """Govern leaving PAUSED: to RUNNING, SCHEDULED, CANCELLING or a final state.

    A suspended run may only be rescheduled with a deployment, and a pause whose
    ``pause_timeout`` has passed cannot resume: the run is failed instead.
    """
    if t.from_type is not StateType.PAUSED:
        return
    assert t.initial is not None  # from_type is set
    to_type = t.to_type
    if to_type not in _LEAVABLE_TO and not states.is_final(to_type):
        t.reject(
            f"This run cannot transition to the StateType.{to_type.value} state"
            f" from the StateType.{StateType.PAUSED.value} state."
        )
        return
    current = states.details(t.initial)
    shown_name = (t.proposed["name"] or to_type.value).lower()
    if current.get("pause_reschedule") and t.run.deployment_id is None:
        t.reject(f"Cannot reschedule a {shown_name} flow run without a deployment.")
        return
    t.after_write.append(_mark_resumed)
    if to_type is StateType.CANCELLING:
        # The paused process is still alive and must hear about the
        # cancellation, even after the pause deadline.
        return
    deadline = states.detail_time(t.initial, "pause_timeout")
    if deadline is not None and deadline < t.now:
        failed = states.new_state(
            StateType.FAILED, t.now, message=f"The flow was {shown_name} and never resumed."
        )
        t.reject(f"The flow run {_verb(t)} has timed out and can no longer resume.", state=failed)


def _mark_resumed(t: Transition, written: WireDict) -> None:
    """Set ``resuming`` once the run has left its pause.

    Leaving a blocking pause for SCHEDULED means the process died and the run
    starts over, so its pauses must fire again: reset them instead.
    """
    assert t.initial is not None
    blocking = not states.details(t.initial).get("pause_reschedule")
    if blocking and written["type"] == StateType.SCHEDULED.value:
        t.policy.update(resuming=False, pause_keys=[], retry_type="reschedule")
    else:
        t.policy["resuming"] = True
