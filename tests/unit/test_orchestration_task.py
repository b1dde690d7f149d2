"""Task-run orchestration rules (HTTP set_state): one table row per behaviour."""

from __future__ import annotations

import random
from datetime import timedelta
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
    WAIT,
    Case,
    aborted,
    at,
    check,
    propose,
    rejected,
    stored,
)

from headrace.orchestration import RunView, decide_task_run
from headrace.types import WireDict


def policy(**changes: Any) -> WireDict:
    base = {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": 0,
        "retry_delay": 0,
        "retry_jitter_factor": None,
    }
    return {**base, **changes}


def retry_in(seconds: float) -> WireDict:
    """The run_update of a RUNNING task rejected into AwaitingRetry."""
    return {"total_run_time": 60.0, "next_scheduled_start_time": NOW + timedelta(seconds=seconds)}


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


def retry_case(name: str, run_count: int, retry_delay: Any, expected_delay: float) -> Case:
    return Case(
        name,
        stored("RUNNING"),
        propose("FAILED"),
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        True,
        retry_in(expected_delay),
        run={
            "run_count": run_count,
            "empirical_policy": policy(retries=5, retry_delay=retry_delay),
        },
        state_details={"scheduled_time": at(expected_delay)},
    )


PAUSED_FLOW = stored("PAUSED", pause_timeout=at(300), pause_reschedule=False)

CASES = [
    # --- bookkeeping ---------------------------------------------------------------
    Case(
        "first-running",
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
        "links-state-to-run",
        stored("PENDING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"start_time": NOW, "run_count": 1, "flow_run_run_count": 3},
        run={
            "run_count": 0,
            "start_time": None,
            "run_id": "tr-1",
            "flow_run_id": "fr-1",
            "enclosing_flow_run_count": 3,
        },
        state_details={"task_run_id": "tr-1", "flow_run_id": "fr-1"},
    ),
    Case(
        "duplicate-transition-id",
        stored("RUNNING", transition_id="t-1"),
        propose("COMPLETED", transition_id="t-1"),
        REJECT,
        rejected("This run has already made this state transition."),
        ("RUNNING", "Running"),
        False,
    ),
    # --- terminal states ---------------------------------------------------------------
    *[
        Case(
            f"terminal-to-{to.lower()}-aborts",
            stored("FAILED"),
            propose(to),
            ABORT,
            aborted("Run is already FAILED."),
            ("FAILED", "Failed"),
            False,
        )
        for to in ("CRASHED", "CANCELLING", "PAUSED")
    ],
    *[
        Case(
            f"completed-with-result-to-{to.lower()}",
            stored("COMPLETED", data=RESULT),
            propose(to),
            REJECT,
            rejected("This run is already completed."),
            ("COMPLETED", "Completed"),
            False,
        )
        for to in ("RUNNING", "FAILED")
    ],
    Case(
        "failed-reruns-with-fresh-retries",
        stored("FAILED"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 1, "end_time": None},
        run={"run_count": 3},
    ),
    Case(
        "rerun-in-newer-flow-attempt-is-retrying",
        stored("FAILED"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Retrying"),
        True,
        {"run_count": 1, "end_time": None, "flow_run_run_count": 2},
        run={"run_count": 2, "flow_run_run_count": 1, "enclosing_flow_run_count": 2},
    ),
    Case(
        "failed-to-pending-resets-run-count",
        stored("FAILED"),
        propose("PENDING"),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"run_count": 0, "end_time": None},
        run={"run_count": 2},
    ),
    Case(
        "terminal-to-terminal-keeps-counts",
        stored("COMPLETED", data={"type": "unpersisted"}),
        propose("COMPLETED"),
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
        True,
    ),
    # --- enclosing flow run ----------------------------------------------------------------
    Case(
        "flow-paused-task-waits",
        stored("PENDING"),
        propose("RUNNING"),
        REJECT,
        rejected("The flow is paused, new tasks can execute after resuming flow run: fr-1."),
        ("PAUSED", "NotReady"),
        True,
        {},
        run={"flow_run_id": "fr-1", "enclosing_flow_state": PAUSED_FLOW},
        state_details={"pause_timeout": at(300), "pause_reschedule": False, "pause_key": None},
    ),
    Case(
        "flow-not-running-aborts",
        stored("PENDING"),
        propose("RUNNING"),
        ABORT,
        aborted("The enclosing flow must be running to begin task execution."),
        ("PENDING", "Pending"),
        False,
        run={"flow_run_id": "fr-1", "enclosing_flow_state": stored("COMPLETED")},
    ),
    Case(
        "flow-running-task-runs",
        stored("PENDING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"start_time": NOW, "run_count": 1},
        run={
            "run_count": 0,
            "start_time": None,
            "flow_run_id": "fr-1",
            "enclosing_flow_state": stored("RUNNING"),
        },
    ),
    # --- scheduled time ------------------------------------------------------------------------
    Case(
        "running-before-scheduled-time",
        stored("SCHEDULED", scheduled_time=at(5)),
        propose("RUNNING"),
        WAIT,
        {"type": "wait_details", "delay_seconds": 5, "reason": "Scheduled time is in the future"},
        ("SCHEDULED", "Scheduled"),
        False,
    ),
    Case(
        "scheduled-to-pending-copies-time",
        stored("SCHEDULED", scheduled_time=at(5)),
        propose("PENDING"),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"next_scheduled_start_time": None},
        state_details={"scheduled_time": at(5)},
    ),
    # --- retries ----------------------------------------------------------------------------------
    retry_case("retry-fixed-delay", 1, 10, 10),
    retry_case("retry-no-delay", 1, None, 0),
    retry_case("retry-delay-list-first", 1, [1, 5, 30], 1),
    retry_case("retry-delay-list-second", 2, [1, 5, 30], 5),
    retry_case("retry-delay-list-past-end", 5, [1, 5, 30], 30),
    Case(
        "retry-keeps-message-and-result",
        stored("RUNNING"),
        {**propose("FAILED", data=RESULT), "message": "boom"},
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        True,
        retry_in(0),
        run={"empirical_policy": policy(retries=1)},
    ),
    Case(
        "retry-vetoed-by-client",
        stored("RUNNING"),
        propose("FAILED", retriable=False),
        ACCEPT,
        ACCEPTED,
        ("FAILED", "Failed"),
        True,
        {"end_time": NOW, "total_run_time": 60.0},
        run={"empirical_policy": policy(retries=3)},
    ),
    Case(
        "retries-exhausted",
        stored("RUNNING"),
        propose("FAILED"),
        ACCEPT,
        ACCEPTED,
        ("FAILED", "Failed"),
        True,
        {"end_time": NOW, "total_run_time": 60.0},
        run={"run_count": 4, "empirical_policy": policy(retries=3)},
    ),
    Case(
        "retry-from-deprecated-fields",
        stored("RUNNING"),
        propose("FAILED"),
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        True,
        retry_in(2),
        run={"empirical_policy": policy(retries=None, max_retries=1, retry_delay_seconds=2.0)},
    ),
    Case(
        "running-after-retry-is-retrying",
        stored("SCHEDULED", "AwaitingRetry", scheduled_time=at(-1)),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Retrying"),
        True,
        {"run_count": 2, "next_scheduled_start_time": None},
    ),
    Case(
        "running-again-is-rerunning",
        stored("PENDING"),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Rerunning"),
        True,
        {"run_count": 2},
    ),
    # --- force and background tasks ---------------------------------------------------------
    Case(
        "force-accepts-anything",
        stored("COMPLETED", data=RESULT, transition_id="t-1"),
        propose("CRASHED", transition_id="t-1"),
        ACCEPT,
        ACCEPTED,
        ("CRASHED", "Crashed"),
        True,
        force=True,
    ),
    Case(
        "force-skips-wait-and-renames",
        stored("SCHEDULED", "AwaitingRetry", scheduled_time=at(60)),
        propose("RUNNING"),
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        True,
        {"run_count": 2, "next_scheduled_start_time": None},
        force=True,
    ),
    Case(
        "deferred-second-pending-aborts-even-forced",
        stored("PENDING"),
        propose("PENDING", deferred=True),
        ABORT,
        aborted("This run is in a PENDING state and cannot transition to a PENDING state."),
        ("PENDING", "Pending"),
        False,
        force=True,
    ),
    Case(
        "deferred-pending-carries-parameters",
        stored("SCHEDULED", scheduled_time=at(-1), task_parameters_id="p-1", deferred=True),
        propose("PENDING", deferred=True),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        True,
        {"next_scheduled_start_time": None},
        run={"run_count": 0},
        state_details={"task_parameters_id": "p-1", "scheduled_time": at(-1)},
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_decide_task_run(case: Case) -> None:
    decision = decide_task_run(view(case), case.proposed, force=case.force, now=NOW)
    check(case, decision)


@pytest.mark.parametrize("factor", [0.1, 0.5, 2.0])
def test_retry_jitter_stays_within_bounds(factor: float) -> None:
    run = RunView(
        stored("RUNNING"),
        1,
        policy(retries=1, retry_delay=10, retry_jitter_factor=factor),
        STARTED,
        0.0,
    )
    delays = set()
    for seed in range(50):
        decision = decide_task_run(
            run, propose("FAILED"), force=False, now=NOW, rng=random.Random(seed)
        )
        assert decision.status is REJECT
        delay = decision.run_update["next_scheduled_start_time"] - NOW
        delays.add(delay)
        assert timedelta(0) <= delay <= timedelta(seconds=10 * (1 + factor) + 0.001)
    assert len(delays) > 1


def test_retry_jitter_is_reproducible_with_a_seed() -> None:
    run = RunView(
        stored("RUNNING"),
        1,
        policy(retries=1, retry_delay=10, retry_jitter_factor=0.5),
        STARTED,
        0.0,
    )

    def once() -> Any:
        decision = decide_task_run(
            run, propose("FAILED"), force=False, now=NOW, rng=random.Random(7)
        )
        return decision.run_update["next_scheduled_start_time"]

    assert once() == once()
