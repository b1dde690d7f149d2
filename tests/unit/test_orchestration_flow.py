"""Flow-run orchestration rules: one table row per behaviour."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.orchestration_cases import (
    ABORT,
    ACCEPT,
    ACCEPTED,
    NOW,
    REJECT,
    RESULT,
    STARTED,
    UNPERSISTED,
    WAIT,
    Case,
    aborted,
    at,
    check,
    propose,
    rejected,
    stored,
    waited,
)

from headrace.orchestration import Decision, RunView, decide_flow_run, initial_state
from headrace.orchestration.states import wire_time
from headrace.types import WireDict


def policy(**changes: Any) -> WireDict:
    base = {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": 0,
        "retry_delay": 0,
        "pause_keys": [],
        "resuming": False,
        "retry_type": None,
    }
    return {**base, **changes}


def view(case: Case) -> RunView:
    fields: WireDict = {
        "state": case.current,
        "run_count": 1,
        "empirical_policy": policy(),
        "start_time": STARTED,
        "total_run_time": 50.0,
    }
    fields.update(case.run)
    return RunView(**fields)


RESET = policy(pause_keys=[], resuming=False, retry_type=None)

CASES = [
    # --- plain bookkeeping -------------------------------------------------
    Case(
        "first-running",
        stored("PENDING"),
        propose("RUNNING", "Running"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"start_time": NOW, "run_count": 1},
        run={"run_count": 0, "start_time": None, "total_run_time": 0.0},
    ),
    Case(
        "name-defaults-from-type",
        stored("PENDING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"start_time": NOW, "run_count": 1},
        run={"run_count": 0, "start_time": None},
    ),
    Case(
        "no-current-state",
        None,
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"start_time": NOW, "run_count": 1},
        run={"run_count": 0, "start_time": None},
    ),
    Case(
        "running-to-completed",
        stored("RUNNING"),
        propose("COMPLETED", data=RESULT),
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
        True,
        {"end_time": NOW, "total_run_time": 60.0},
    ),
    Case(
        "second-running-is-accepted-like-reference",
        stored("RUNNING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2, "total_run_time": 60.0},
    ),
    Case(
        "links-state-to-run-and-parent-task",
        stored("PENDING"),
        propose("RUNNING", flow_run_id=None),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2},
        run={"run_id": "fr-1", "parent_task_run_id": "tr-9"},
        state_details={"flow_run_id": "fr-1", "task_run_id": "tr-9", "deferred": False},
    ),
    Case(
        "keeps-deployment-lease",
        stored("PENDING", deployment_concurrency_lease_id="lease-1"),
        propose("RUNNING", deployment_concurrency_lease_id=None),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2},
        state_details={"deployment_concurrency_lease_id": "lease-1"},
    ),
    # --- transition_id dedupe ------------------------------------------------
    Case(
        "duplicate-transition-id",
        stored("RUNNING", transition_id="t-1"),
        propose("COMPLETED", transition_id="t-1"),
        REJECT,
        rejected("This run has already made this state transition."),
        ("RUNNING", "Running"),
        False,
    ),
    Case(
        "different-transition-id",
        stored("RUNNING", transition_id="t-1"),
        propose("COMPLETED", transition_id="t-2"),
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
        True,
        {"end_time": NOW, "total_run_time": 60.0},
    ),
    # --- terminal states ----------------------------------------------------------
    *[
        Case(
            f"terminal-to-{to.lower()}-aborts",
            stored("COMPLETED"),
            propose(to),
            ABORT,
            aborted("Run is already in terminal state COMPLETED."),
            ("COMPLETED", "Completed"),
            False,
        )
        for to in ("CRASHED", "CANCELLING", "PAUSED")
    ],
    Case(
        "completed-with-result-cannot-rerun",
        stored("COMPLETED", data=RESULT),
        propose("RUNNING"),
        REJECT,
        rejected("Run is already COMPLETED."),
        ("COMPLETED", "Completed"),
        False,
    ),
    Case(
        "completed-without-result-reruns",
        stored("COMPLETED", data=UNPERSISTED),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"end_time": None, "run_count": 2, "empirical_policy": RESET},
        run={"empirical_policy": policy(pause_keys=["1"], resuming=True, retry_type="x")},
    ),
    Case(
        "completed-result-not-overwritten",
        stored("COMPLETED", data=RESULT),
        propose("COMPLETED", data=UNPERSISTED),
        REJECT,
        rejected(
            "Cannot overwrite a COMPLETED state that carries persisted result "
            "data with one that does not."
        ),
        ("COMPLETED", "Completed"),
        False,
    ),
    Case(
        "terminal-to-terminal-keeps-end-time",
        stored("FAILED"),
        propose("COMPLETED"),
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
        True,
    ),
    Case(
        "reschedule-needs-deployment",
        stored("FAILED"),
        propose("SCHEDULED"),
        ABORT,
        aborted("Cannot reschedule a run without an associated deployment."),
        ("FAILED", "Failed"),
        False,
    ),
    Case(
        "reschedule-with-deployment",
        stored("FAILED"),
        propose("SCHEDULED", scheduled_time=at(30)),
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "Scheduled"),
        True,
        {
            "end_time": None,
            "next_scheduled_start_time": NOW + timedelta(seconds=30),
            "empirical_policy": policy(retry_type="reschedule"),
        },
        run={"deployment_id": "dep-1", "empirical_policy": policy(pause_keys=["1"])},
    ),
    Case(
        "failed-to-pending-allowed-like-reference",
        stored("FAILED"),
        propose("PENDING"),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"end_time": None, "empirical_policy": RESET},
        run={"empirical_policy": policy(resuming=True)},
    ),
    Case(
        "cancelled-to-pending-aborts-and-keeps-policy",
        stored("CANCELLED"),
        propose("PENDING"),
        ABORT,
        aborted("This run is in a CANCELLED state and cannot transition to a PENDING state."),
        ("CANCELLED", "Cancelled"),
        False,
        run={"empirical_policy": policy(pause_keys=["1"])},
    ),
    # --- PENDING guard ------------------------------------------------------------
    Case(
        "second-pending-aborts",
        stored("PENDING"),
        propose("PENDING", "Pending"),
        ABORT,
        aborted("This run is in a PENDING state and cannot transition to a PENDING state."),
        ("PENDING", "Pending"),
        False,
    ),
    Case(
        "pending-after-submitting-aborts",
        stored("PENDING", "Submitting"),
        propose("PENDING"),
        ABORT,
        aborted("This run is in a PENDING state and cannot transition to a PENDING state."),
        ("PENDING", "Submitting"),
        False,
    ),
    Case(
        "pending-to-submitting-carries-scheduled-time",
        stored("PENDING", scheduled_time=at(-5)),
        propose("PENDING", "Submitting", scheduled_time=at(99)),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Submitting"),
        True,
        state_details={"scheduled_time": at(-5)},
    ),
    Case(
        "running-to-pending-aborts",
        stored("RUNNING"),
        propose("PENDING"),
        ABORT,
        aborted("This run is in a RUNNING state and cannot transition to a PENDING state."),
        ("RUNNING", "Running"),
        False,
    ),
    # --- CANCELLING ------------------------------------------------------------------
    *[
        Case(
            f"cancelling-to-{to.lower()}-rejected",
            stored("CANCELLING"),
            propose(to),
            REJECT,
            rejected(
                "Cannot transition flows that are cancelling to a state other than Cancelled."
            ),
            ("CANCELLING", "Cancelling"),
            False,
        )
        for to in ("PENDING", "COMPLETED", "RUNNING", "CANCELLING")
    ],
    Case(
        "cancelling-to-cancelled",
        stored("CANCELLING"),
        propose("CANCELLED"),
        ACCEPT,
        ACCEPTED,
        ("CANCELLED", "Cancelled"),
        True,
        {"end_time": NOW},
    ),
    Case(
        "scheduled-without-infra-cancels-at-once",
        stored("SCHEDULED", scheduled_time=at(600)),
        propose("CANCELLING"),
        REJECT,
        rejected("Scheduled flow run has no infrastructure to terminate."),
        ("CANCELLED", "Cancelled"),
        True,
        {"start_time": NOW, "end_time": NOW, "next_scheduled_start_time": None},
        run={"run_count": 0, "start_time": None},
    ),
    Case(
        "scheduled-with-infra-goes-cancelling",
        stored("SCHEDULED", scheduled_time=at(600)),
        propose("CANCELLING"),
        ACCEPT,
        ACCEPTED,
        ("CANCELLING", "Cancelling"),
        True,
        {"next_scheduled_start_time": None},
        run={"infrastructure_pid": "123"},
    ),
    Case(
        "resuming-run-cancels-at-once",
        stored("SCHEDULED", "Resuming", scheduled_time=at(0)),
        propose("CANCELLING"),
        REJECT,
        rejected("Scheduled flow run has no infrastructure to terminate."),
        ("CANCELLED", "Cancelled"),
        True,
        {"end_time": NOW, "next_scheduled_start_time": None},
        run={"infrastructure_pid": "123"},
    ),
    Case(
        "suspended-run-cancels-at-once",
        stored("PAUSED", "Suspended", pause_reschedule=True),
        propose("CANCELLING"),
        REJECT,
        rejected("Suspended flow run has no infrastructure to terminate."),
        ("CANCELLED", "Cancelled"),
        True,
        {"end_time": NOW},
        run={"deployment_id": "dep-1"},
    ),
    # --- scheduled time ------------------------------------------------------------
    *[
        Case(
            f"{current.lower()}-running-{seconds}s-early",
            stored(current, scheduled_time=at(seconds)),
            propose("RUNNING"),
            WAIT,
            waited(expected),
            (current, current.capitalize()),
            False,
        )
        for current, seconds, expected in (
            ("SCHEDULED", 5, 5),
            ("SCHEDULED", 0.6, 1),
            ("SCHEDULED", 1.5, 1),
            ("SCHEDULED", 2.7, 3),
            ("PENDING", 3, 3),
        )
    ],
    Case(
        "running-less-than-half-second-early-accepted",
        stored("SCHEDULED", scheduled_time=at(0.4)),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2, "next_scheduled_start_time": None},
    ),
    Case(
        "scheduled-to-pending-early-copies-time",
        stored("SCHEDULED", scheduled_time=at(30)),
        propose("PENDING"),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"next_scheduled_start_time": None},
        state_details={"scheduled_time": at(30)},
    ),
    Case(
        "scheduled-to-pending-keeps-proposed-time",
        stored("SCHEDULED", scheduled_time=at(30)),
        propose("PENDING", scheduled_time=at(40)),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"next_scheduled_start_time": None},
        state_details={"scheduled_time": at(40)},
    ),
    Case(
        "late-marking",
        stored("SCHEDULED", scheduled_time=at(-60)),
        propose("SCHEDULED", "Late", scheduled_time=at(-60)),
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "Late"),
        True,
        {"next_scheduled_start_time": NOW - timedelta(seconds=60)},
    ),
    Case(
        "late-only-from-scheduled",
        stored("PENDING"),
        propose("SCHEDULED", "Late"),
        REJECT,
        rejected("Only scheduled flows can be marked late."),
        ("PENDING", "Pending"),
        False,
    ),
    Case(
        "late-only-once",
        stored("SCHEDULED", "Late", scheduled_time=at(-60)),
        propose("SCHEDULED", "Late"),
        REJECT,
        rejected("This flow run is already marked late."),
        ("SCHEDULED", "Late"),
        False,
    ),
    # --- retries ----------------------------------------------------------------------
    Case(
        "failure-with-retries-left",
        stored("RUNNING", deployment_concurrency_lease_id="lease-1"),
        {**propose("FAILED", data=RESULT), "message": "boom"},
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        True,
        {
            "total_run_time": 60.0,
            "next_scheduled_start_time": NOW + timedelta(seconds=7),
            "empirical_policy": policy(retries=1, retry_delay=7, retry_type="in_process"),
        },
        run={"empirical_policy": policy(retries=1, retry_delay=7, pause_keys=["1"])},
        state_details={
            "scheduled_time": at(7),
            "transition_id": None,
            "deployment_concurrency_lease_id": "lease-1",
        },
    ),
    Case(
        "failure-retries-from-deprecated-fields",
        stored("RUNNING"),
        propose("FAILED"),
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        True,
        {
            "total_run_time": 60.0,
            "next_scheduled_start_time": NOW + timedelta(seconds=5),
            "empirical_policy": policy(
                retries=None, retry_delay=None, max_retries=2, retry_delay_seconds=5.0
            )
            | {"retry_type": "in_process"},
        },
        run={
            "empirical_policy": policy(
                retries=None, retry_delay=None, max_retries=2, retry_delay_seconds=5.0
            )
        },
    ),
    Case(
        "failure-with-retries-exhausted",
        stored("RUNNING"),
        propose("FAILED"),
        ACCEPT,
        ACCEPTED,
        ("FAILED", "Failed"),
        True,
        {
            "end_time": NOW,
            "total_run_time": 60.0,
            "empirical_policy": policy(retries=1, retry_type=None),
        },
        run={"run_count": 2, "empirical_policy": policy(retries=1, retry_type="in_process")},
    ),
    Case(
        "failure-without-retries",
        stored("RUNNING"),
        propose("FAILED"),
        ACCEPT,
        ACCEPTED,
        ("FAILED", "Failed"),
        True,
        {"end_time": NOW, "total_run_time": 60.0},
        run={"empirical_policy": policy(retries=None)},
    ),
    # --- pausing -----------------------------------------------------------------------
    Case(
        "pause-from-running",
        stored("RUNNING"),
        propose("PAUSED", "Paused", pause_key="1"),
        ACCEPT,
        ACCEPTED,
        ("PAUSED", "Paused"),
        True,
        {"total_run_time": 60.0, "empirical_policy": policy(pause_keys=["0", "1"])},
        run={"empirical_policy": policy(pause_keys=["0"])},
    ),
    Case(
        "pause-key-already-fired",
        stored("RUNNING"),
        propose("PAUSED", "Paused", pause_key="1"),
        REJECT,
        rejected("This pause has already fired."),
        ("RUNNING", "Running"),
        False,
        run={"empirical_policy": policy(pause_keys=["1"])},
    ),
    Case(
        "pause-only-when-running",
        stored("PENDING"),
        propose("PAUSED", "Paused", pause_key="1"),
        REJECT,
        rejected("Cannot pause flows that are not currently running."),
        ("PENDING", "Pending"),
        False,
    ),
    Case(
        "suspend-only-when-running",
        stored("SCHEDULED", scheduled_time=at(0)),
        propose("PAUSED", "Suspended", pause_key="1", pause_reschedule=True),
        REJECT,
        rejected("Cannot suspend flows that are not currently running."),
        ("SCHEDULED", "Scheduled"),
        False,
    ),
    Case(
        "pause-without-state",
        None,
        propose("PAUSED", pause_key="1"),
        ABORT,
        aborted("Cannot pause flows with no state."),
        None,
        False,
    ),
    Case(
        "suspend-needs-deployment",
        stored("RUNNING"),
        propose("PAUSED", "Suspended", pause_key="1", pause_reschedule=True),
        ABORT,
        aborted("Cannot suspend flows without a deployment."),
        ("RUNNING", "Running"),
        False,
    ),
    Case(
        "suspend-not-for-subflows",
        stored("RUNNING"),
        propose("PAUSED", "Suspended", pause_key="1", pause_reschedule=True),
        ABORT,
        aborted("Cannot suspend subflows."),
        ("RUNNING", "Running"),
        False,
        run={"deployment_id": "dep-1", "parent_task_run_id": "tr-1"},
    ),
    Case(
        "suspend-with-deployment",
        stored("RUNNING"),
        propose("PAUSED", "Suspended", pause_key="1", pause_reschedule=True),
        ACCEPT,
        ACCEPTED,
        ("PAUSED", "Suspended"),
        True,
        {"total_run_time": 60.0, "empirical_policy": policy(pause_keys=["1"])},
        run={"deployment_id": "dep-1"},
    ),
    # --- resuming -------------------------------------------------------------------------
    Case(
        "resume-blocking-pause",
        stored("PAUSED", pause_key="1", pause_timeout=at(300)),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        # The reference counts this RUNNING as a new run, then marks resuming.
        {"run_count": 2, "empirical_policy": policy(pause_keys=["1"], resuming=True)},
        run={"empirical_policy": policy(pause_keys=["1"])},
    ),
    Case(
        "resume-suspended-run",
        stored("PAUSED", "Suspended", pause_reschedule=True, pause_key="1"),
        propose("SCHEDULED", "Resuming", scheduled_time=at(0)),
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "Resuming"),
        True,
        {
            "next_scheduled_start_time": NOW,
            "empirical_policy": policy(pause_keys=["1"], resuming=True),
        },
        run={"deployment_id": "dep-1", "empirical_policy": policy(pause_keys=["1"])},
    ),
    Case(
        "running-after-resume-is-same-attempt",
        stored("PENDING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"empirical_policy": policy(pause_keys=["1"], resuming=False)},
        run={"empirical_policy": policy(pause_keys=["1"], resuming=True)},
    ),
    Case(
        "blocking-pause-rescheduled-starts-over",
        stored("PAUSED", pause_key="1"),
        propose("SCHEDULED", scheduled_time=at(0)),
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "Scheduled"),
        True,
        {
            "next_scheduled_start_time": NOW,
            "empirical_policy": policy(pause_keys=[], retry_type="reschedule"),
        },
        run={"empirical_policy": policy(pause_keys=["1"])},
    ),
    Case(
        "paused-to-pending-rejected",
        stored("PAUSED", pause_key="1"),
        propose("PENDING"),
        REJECT,
        rejected(
            "This run cannot transition to the StateType.PENDING state"
            " from the StateType.PAUSED state."
        ),
        ("PAUSED", "Paused"),
        False,
    ),
    Case(
        "suspended-resume-needs-deployment",
        stored("PAUSED", "Suspended", pause_reschedule=True),
        propose("RUNNING"),
        REJECT,
        rejected("Cannot reschedule a running flow run without a deployment."),
        ("PAUSED", "Suspended"),
        False,
    ),
    Case(
        "pause-timed-out",
        stored("PAUSED", pause_key="1", pause_timeout=at(-1)),
        propose("RUNNING"),
        REJECT,
        rejected("The flow run pause has timed out and can no longer resume."),
        ("FAILED", "Failed"),
        True,
        {"end_time": NOW, "empirical_policy": policy(resuming=True)},
    ),
    Case(
        "cancel-after-pause-timeout",
        stored("PAUSED", pause_key="1", pause_timeout=at(-1)),
        propose("CANCELLING"),
        ACCEPT,
        ACCEPTED,
        ("CANCELLING", "Cancelling"),
        True,
        {"empirical_policy": policy(resuming=True)},
        run={"infrastructure_pid": "123"},
    ),
    # --- force --------------------------------------------------------------------------------
    Case(
        "force-crashed-from-completed",
        stored("COMPLETED"),
        propose("CRASHED"),
        ACCEPT,
        ACCEPTED,
        ("CRASHED", "Crashed"),
        True,
        force=True,
    ),
    Case(
        "force-ignores-transition-id-and-cancelling",
        stored("CANCELLING", transition_id="t-1"),
        propose("RUNNING", transition_id="t-1"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2},
        force=True,
    ),
    Case(
        "force-keeps-bypass",
        stored("SCHEDULED", scheduled_time=at(0)),
        propose("CANCELLING"),
        REJECT,
        rejected("Scheduled flow run has no infrastructure to terminate."),
        ("CANCELLED", "Cancelled"),
        True,
        {"end_time": NOW, "next_scheduled_start_time": None},
        force=True,
    ),
    Case(
        "force-keeps-result-guard",
        stored("COMPLETED", data=RESULT),
        propose("COMPLETED"),
        REJECT,
        rejected(
            "Cannot overwrite a COMPLETED state that carries persisted result "
            "data with one that does not."
        ),
        ("COMPLETED", "Completed"),
        False,
        force=True,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_decide_flow_run(case: Case) -> None:
    decision = decide_flow_run(view(case), case.proposed, force=case.force, now=NOW)
    check(case, decision)


def test_accepted_state_is_stamped_and_complete() -> None:
    decision = decide_flow_run(
        RunView(stored("PENDING"), 0, policy(), None, 0.0),
        {"type": "RUNNING", "state_details": {"transition_id": "t-9"}, "timestamp": "x", "id": "y"},
        force=False,
        now=NOW,
    )
    assert decision.state is not None
    assert "id" not in decision.state
    assert decision.state["timestamp"] == NOW
    assert decision.state["state_details"]["transition_id"] == "t-9"
    assert decision.state["state_details"]["pause_reschedule"] is False
    assert len(decision.state["state_details"]) == 18


def test_pause_without_key_records_a_fresh_one() -> None:
    run = RunView(stored("RUNNING"), 1, policy(pause_keys=["1"]), STARTED, 0.0)
    decision = decide_flow_run(run, propose("PAUSED"), force=False, now=NOW)
    assert decision.status is ACCEPT
    keys = decision.run_update["empirical_policy"]["pause_keys"]
    assert keys[0] == "1" and len(keys) == 2 and keys[1] != "1"


def test_inputs_are_not_mutated() -> None:
    current = stored("RUNNING", transition_id="t-1")
    pol = policy(retries=1)
    run = RunView(current, 1, pol, STARTED, 0.0)
    proposed = propose("FAILED")
    snapshot = (repr(current), repr(pol), repr(proposed))
    decide_flow_run(run, proposed, force=False, now=NOW)
    assert (repr(current), repr(pol), repr(proposed)) == snapshot


def test_unknown_state_type_raises() -> None:
    run = RunView(stored("RUNNING"), 1, policy(), STARTED, 0.0)
    with pytest.raises(ValueError):
        decide_flow_run(run, {"type": "running"}, force=False, now=NOW)


def apply(run: RunView, decision: Decision, state_id: str) -> RunView:
    """Store a decision the way the API layer will."""
    if not decision.write_state:
        return run
    assert decision.state is not None
    update = decision.run_update
    return replace(
        run,
        state={**decision.state, "id": state_id},
        run_count=update.get("run_count", run.run_count),
        start_time=update.get("start_time", run.start_time),
        total_run_time=update.get("total_run_time", run.total_run_time),
        empirical_policy=update.get("empirical_policy", run.empirical_policy),
    )


def test_captured_flow_retry_sequence() -> None:
    """Replays a2_flow_retries: @flow(retries=1, retry_delay_seconds=1)."""
    t0 = datetime(2026, 11, 25, 14, 54, 35, 871310, tzinfo=UTC)
    created = {"type": "PENDING", "name": "Pending", "state_details": {"traceparent": None}}
    state, update = initial_state(created, t0, flow_run_id="fr-1")
    assert update == {"expected_start_time": t0}
    run = RunView(state, 0, policy(retries=1, retry_delay=1), None, 0.0, run_id="fr-1")

    running_at = datetime(2026, 11, 25, 14, 54, 36, 36916, tzinfo=UTC)
    decision = decide_flow_run(run, propose("RUNNING"), force=False, now=running_at)
    assert (decision.status, decision.run_update) == (
        ACCEPT,
        {"start_time": running_at, "run_count": 1},
    )
    run = apply(run, decision, "s-1")

    failed_at = datetime(2026, 11, 25, 14, 54, 37, 302302, tzinfo=UTC)
    failure = {**propose("FAILED", data=RESULT, retriable=False), "message": "first attempt fails"}
    decision = decide_flow_run(run, failure, force=False, now=failed_at)
    assert decision.status is REJECT
    assert decision.details == rejected("Retrying")
    assert decision.state is not None
    assert (decision.state["type"], decision.state["name"]) == ("SCHEDULED", "AwaitingRetry")
    assert decision.state["message"] == "first attempt fails"
    assert decision.state["data"] == RESULT
    retry_at = failed_at + timedelta(seconds=1)
    assert decision.state["state_details"]["scheduled_time"] == wire_time(retry_at)
    assert decision.state["state_details"]["flow_run_id"] == "fr-1"
    assert decision.run_update["total_run_time"] == pytest.approx(1.265386)
    assert decision.run_update["empirical_policy"]["retry_type"] == "in_process"
    run = apply(run, decision, "s-2")

    early = failed_at + timedelta(seconds=0.016)
    decision = decide_flow_run(run, propose("RUNNING"), force=False, now=early)
    assert (decision.status, decision.details, decision.write_state) == (WAIT, waited(1), False)
    assert decision.state is not None and decision.state["id"] == "s-2"

    later = datetime(2026, 11, 25, 14, 54, 38, 332947, tzinfo=UTC)
    decision = decide_flow_run(run, propose("RUNNING"), force=False, now=later)
    assert decision.status is ACCEPT
    assert decision.state is not None and decision.state["name"] == "Running"
    assert decision.run_update == {"run_count": 2, "next_scheduled_start_time": None}
    run = apply(run, decision, "s-3")

    done_at = later + timedelta(seconds=0.03)
    decision = decide_flow_run(run, propose("COMPLETED"), force=False, now=done_at)
    assert decision.status is ACCEPT
    assert decision.run_update["end_time"] == done_at
    assert decision.run_update["total_run_time"] == pytest.approx(1.295386)
