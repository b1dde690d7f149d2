"""Orchestration of flow-run state transitions.

`decide_flow_run` applies the rules in the reference server's order. Rules that
need other tables are the caller's: reading the deployment's concurrency limit
(`RunView.deployment_slots`) and making the lease changes the decision lists,
deleting a pause's stale run input, updating a subflow's tracking task run and
emitting events all happen around this pure decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from headrace.orchestration import bookkeeping, deployment_concurrency, rules, states
from headrace.orchestration.decisions import Decision, Rule, RunView, Transition, run_rules
from headrace.orchestration.pauses import handle_pausing_flows, handle_resuming_paused_flows
from headrace.types import StateType, WireDict

_LEAVING_TERMINAL_ABORTED = frozenset({StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED})


def decide_flow_run(run: RunView, proposed: WireDict, *, force: bool, now: datetime) -> Decision:
    """Decide what happens when a client proposes a state for a flow run.

    Args:
        run: The flow run as currently stored.
        proposed: The StateCreate wire dict from the request.
        force: The request's ``force`` flag; skips all rules but the
            result-loss guard and the cancel-without-infrastructure bypass.
        now: The server's clock (aware).

    Returns:
        The decision, with the state and run columns to write, if any.

    Raises:
        ValueError: If the proposed type is not a state type.
    """
    transition = Transition.start(run, proposed, now)
    _preserve_lease_id(transition)
    run_rules(transition, _FORCED_RULES if force else _CORE_RULES)
    decision = bookkeeping.finish(transition, "flow")
    return deployment_concurrency.with_lease_actions(transition, decision)


def _preserve_lease_id(t: Transition) -> None:
    """Keep the deployment concurrency lease across transitions.

    Workers send ``deployment_concurrency_lease_id: null`` in every proposal;
    dropping the lease would leak the deployment's concurrency slot.
    """
    lease_id = states.details(t.initial).get("deployment_concurrency_lease_id")
    if lease_id is not None and t.proposed_details.get("deployment_concurrency_lease_id") is None:
        t.proposed_details["deployment_concurrency_lease_id"] = lease_id


def handle_terminal_state_transitions(t: Transition) -> None:
    """Guard runs that are already COMPLETED, FAILED, CANCELLED or CRASHED.

    Leaving a terminal state is a re-run: allowed, except into CANCELLING,
    PAUSED or CRASHED, out of a COMPLETED state whose result is stored, or into
    SCHEDULED without a deployment to pick the run up. A re-run starts with no
    fired pauses.
    """
    if not states.is_final(t.from_type):
        return
    assert t.initial is not None  # from_type is set
    if t.to_type in _LEAVING_TERMINAL_ABORTED:
        t.abort(f"Run is already in terminal state {t.initial['type']}.")
        return
    leaving = not states.is_final(t.to_type)
    if t.from_type is StateType.COMPLETED and leaving and _persisted(t.initial):
        t.reject("Run is already COMPLETED.")
        return
    prevent_result_data_loss(t)
    if t.settled:
        return
    if t.to_type is StateType.SCHEDULED and t.run.deployment_id is None:
        t.abort("Cannot reschedule a run without an associated deployment.")
        return
    if leaving:
        retry_type = "reschedule" if t.to_type is StateType.SCHEDULED else None
        t.provisional_policy.update(resuming=False, pause_keys=[], retry_type=retry_type)


def prevent_result_data_loss(t: Transition) -> None:
    """REJECT COMPLETED-with-stored-result to COMPLETED-without-one: the stored
    result would be unreachable. Applies even to forced transitions."""
    if t.from_type is not StateType.COMPLETED or t.to_type is not StateType.COMPLETED:
        return
    assert t.initial is not None  # from_type is set
    if _persisted(t.initial) and not states.has_persisted_result(t.proposed.get("data")):
        t.reject(
            "Cannot overwrite a COMPLETED state that carries persisted result "
            "data with one that does not."
        )


def _persisted(state: WireDict) -> bool:
    data = state.get("data")
    return bool(data) and states.has_persisted_result(data)


def enforce_cancelling_to_cancelled(t: Transition) -> None:
    """A CANCELLING run may only become CANCELLED: REJECT anything else."""
    if t.from_type is StateType.CANCELLING and t.to_type is not StateType.CANCELLED:
        t.reject("Cannot transition flows that are cancelling to a state other than Cancelled.")


def bypass_cancelling_with_no_infra(t: Transition) -> None:
    """Cancel at once a run that has no process to stop.

    CANCELLING asks a worker to tear down infrastructure. A SCHEDULED run without
    an ``infrastructure_pid``, a run ``Resuming`` from suspension, or a
    suspended run has none, so it is moved straight to CANCELLED (a REJECT whose
    replacement is written).
    """
    if t.to_type is not StateType.CANCELLING:
        return
    if t.from_type not in (StateType.SCHEDULED, StateType.PAUSED):
        return
    assert t.initial is not None  # from_type is set
    scheduled = t.from_type is StateType.SCHEDULED
    if (scheduled and not t.run.infrastructure_pid) or t.initial.get("name") == "Resuming":
        reason = "Scheduled flow run has no infrastructure to terminate."
    elif not scheduled and states.details(t.initial).get("pause_reschedule"):
        reason = "Suspended flow run has no infrastructure to terminate."
    else:
        return
    t.reject(reason, state=states.new_state(StateType.CANCELLED, t.now))


def ensure_only_scheduled_flows_marked_late(t: Transition) -> None:
    """Only a SCHEDULED run that is not already ``Late`` can be marked ``Late``."""
    if t.to_type is not StateType.SCHEDULED or t.proposed["name"] != "Late":
        return
    if t.initial is None:
        return
    if t.from_type is not StateType.SCHEDULED:
        t.reject("Only scheduled flows can be marked late.")
    elif t.initial.get("name") == "Late":
        t.reject("This flow run is already marked late.")


def retry_failed_flows(t: Transition) -> None:
    """Turn a failure into a retry while ``empirical_policy.retries`` allows.

    The engine proposes FAILED and relies on a REJECT with a SCHEDULED
    ``AwaitingRetry`` state (keeping the failure's message and result) to run
    the flow again in the same process. A retried attempt re-fires its pauses.
    """
    if t.from_type is not StateType.RUNNING or t.to_type is not StateType.FAILED:
        return
    assert t.initial is not None  # from_type is set
    retries, retry_delay = rules.retry_settings(t.policy)
    if retries is None or t.run.run_count > retries:
        # Leave the run free for a later infrastructure-level retry.
        t.policy["retry_type"] = None
        return
    t.policy.update(resuming=False, pause_keys=[], retry_type="in_process")
    lease_id = states.details(t.initial).get("deployment_concurrency_lease_id")
    retry_state = states.new_state(
        StateType.SCHEDULED,
        t.now,
        name="AwaitingRetry",
        message=t.proposed.get("message"),
        data=t.proposed.get("data"),
        scheduled_time=states.wire_time(t.now + timedelta(seconds=retry_delay or 0)),
        deployment_concurrency_lease_id=lease_id,
    )
    t.reject("Retrying", state=retry_state)


_CORE_RULES: tuple[Rule, ...] = (
    rules.prevent_duplicate_transitions,
    handle_terminal_state_transitions,
    enforce_cancelling_to_cancelled,
    bypass_cancelling_with_no_infra,
    rules.prevent_pending_transitions,
    deployment_concurrency.validate_slot_at_running,
    deployment_concurrency.secure_slot,
    ensure_only_scheduled_flows_marked_late,
    handle_pausing_flows,
    handle_resuming_paused_flows,
    rules.copy_scheduled_time,
    rules.wait_for_scheduled_time,
    retry_failed_flows,
)

_FORCED_RULES: tuple[Rule, ...] = (
    prevent_result_data_loss,
    bypass_cancelling_with_no_infra,
)
