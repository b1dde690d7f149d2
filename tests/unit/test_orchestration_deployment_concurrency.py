"""Deployment concurrency rules: one table row per behaviour.

Each case gives the run's current state, the proposal, the deployment's limit as
storage read it (`DeploymentSlots`), and expects the answer, the state written
and the lease changes the decision asks storage to make.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest
from tests.unit.orchestration_cases import (
    ABORT,
    ACCEPT,
    ACCEPTED,
    NOW,
    REJECT,
    STARTED,
    WAIT,
    aborted,
    at,
    propose,
    rejected,
    stored,
    waited,
)

from headrace.orchestration import RunView, decide_flow_run
from headrace.orchestration.decisions import DeploymentSlots, LeaseAction
from headrace.orchestration.deployment_concurrency import AWAITING_SLOT_SECONDS, REACHED
from headrace.types import SetStateStatus, WireDict

ROOM = DeploymentSlots(
    limit_id="limit-1",
    limit=1,
    active=True,
    has_room=True,
    strategy="ENQUEUE",
    lease_seconds=300.0,
    lease_live=False,
    new_lease_id="lease-new",
)
FULL = replace(ROOM, has_room=False)
LIVE = replace(FULL, lease_live=True)
ACQUIRE = LeaseAction("acquire", "lease-new", "limit-1", 300.0)
RELEASE_OLD = LeaseAction("release", "lease-old")
LOST = "Deployment concurrency slot lost during provisioning - no slots available to continue execution"


@dataclass
class Case:
    id: str
    current: WireDict | None
    proposed: WireDict
    slots: DeploymentSlots | None
    status: SetStateStatus
    details: WireDict
    state: tuple[str, str] | None
    leases: tuple[LeaseAction, ...] = ()
    lease_id: Any = "unchecked"
    force: bool = False
    policy: WireDict = field(default_factory=dict)


CASES = [
    # --- securing a slot at PENDING --------------------------------------------------
    Case(
        "pending-takes-a-free-slot",
        stored("SCHEDULED", scheduled_time=at(-1)),
        propose("PENDING", "Pending"),
        ROOM,
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        (ACQUIRE,),
        lease_id="lease-new",
    ),
    Case(
        "pending-from-no-state-takes-a-slot",
        None,
        propose("PENDING"),
        ROOM,
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        (ACQUIRE,),
        lease_id="lease-new",
    ),
    Case(
        "enqueue-when-full",
        stored("SCHEDULED", scheduled_time=at(-1)),
        propose("PENDING"),
        FULL,
        REJECT,
        rejected(REACHED),
        ("SCHEDULED", "AwaitingConcurrencySlot"),
        lease_id=None,
    ),
    Case(
        "cancel-new-when-full",
        stored("SCHEDULED", "Late", scheduled_time=at(-30)),
        propose("PENDING"),
        replace(FULL, strategy="CANCEL_NEW"),
        REJECT,
        rejected(REACHED),
        ("CANCELLED", "Cancelled"),
    ),
    Case(
        "limit-of-zero-would-deadlock",
        stored("SCHEDULED"),
        propose("PENDING"),
        replace(FULL, limit=0),
        ABORT,
        aborted(
            "The deployment concurrency limit is 0. The flow will deadlock if submitted again."
        ),
        ("SCHEDULED", "Scheduled"),
    ),
    Case(
        "inactive-limit-is-no-limit",
        stored("SCHEDULED"),
        propose("PENDING"),
        replace(FULL, active=False),
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        lease_id=None,
    ),
    Case(
        "no-limit-nothing-to-secure",
        stored("SCHEDULED"),
        propose("PENDING"),
        None,
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
    ),
    Case(
        "a-stale-lease-is-replaced-and-released",
        stored("SCHEDULED", deployment_concurrency_lease_id="lease-old"),
        propose("PENDING"),
        ROOM,
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Pending"),
        (RELEASE_OLD, ACQUIRE),
        lease_id="lease-new",
    ),
    Case(
        "second-pending-is-aborted-before-any-slot-is-taken",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("PENDING", "Pending"),
        ROOM,
        ABORT,
        aborted("This run is in a PENDING state and cannot transition to a PENDING state."),
        ("PENDING", "Pending"),
    ),
    Case(
        "submitting-keeps-the-lease",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("PENDING", "Submitting", deployment_concurrency_lease_id=None),
        FULL,
        ACCEPT,
        ACCEPTED,
        ("PENDING", "Submitting"),
        lease_id="lease-old",
    ),
    # --- entering RUNNING ----------------------------------------------------------
    Case(
        "running-renews-a-live-lease",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("RUNNING"),
        LIVE,
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        (LeaseAction("renew", "lease-old", "limit-1", 300.0),),
        lease_id="lease-old",
    ),
    Case(
        "running-retakes-a-slot-after-the-lease-expired",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("RUNNING"),
        ROOM,
        ACCEPT,
        ACCEPTED,
        ("RUNNING", "Running"),
        (RELEASE_OLD, ACQUIRE),
        lease_id="lease-new",
    ),
    Case(
        "running-without-a-slot-after-expiry-is-cancelled",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("RUNNING"),
        FULL,
        REJECT,
        rejected("Deployment concurrency limit reached after lease expiry."),
        ("CANCELLED", "Cancelled"),
        (RELEASE_OLD,),
    ),
    Case(
        "running-too-early-waits-and-renews-nothing",
        stored("PENDING", deployment_concurrency_lease_id="lease-old", scheduled_time=at(5)),
        propose("RUNNING"),
        LIVE,
        WAIT,
        waited(5),
        ("PENDING", "Pending"),
    ),
    # --- releasing -----------------------------------------------------------------
    Case(
        "completing-releases-the-slot",
        stored("RUNNING", deployment_concurrency_lease_id="lease-old"),
        propose("COMPLETED"),
        None,
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
        (RELEASE_OLD,),
    ),
    Case(
        "a-forced-crash-releases-the-slot",
        stored("RUNNING", deployment_concurrency_lease_id="lease-old"),
        propose("CRASHED"),
        None,
        ACCEPT,
        ACCEPTED,
        ("CRASHED", "Crashed"),
        (RELEASE_OLD,),
        force=True,
    ),
    Case(
        "pending-back-to-scheduled-releases-the-slot",
        stored("PENDING", deployment_concurrency_lease_id="lease-old"),
        propose("SCHEDULED", scheduled_time=at(60)),
        None,
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "Scheduled"),
        (RELEASE_OLD,),
    ),
    Case(
        "cancelling-keeps-the-slot-until-cancelled",
        stored("RUNNING", deployment_concurrency_lease_id="lease-old"),
        propose("CANCELLING"),
        None,
        ACCEPT,
        ACCEPTED,
        ("CANCELLING", "Cancelling"),
    ),
    Case(
        "cancelled-releases-the-slot",
        stored("CANCELLING", deployment_concurrency_lease_id="lease-old"),
        propose("CANCELLED"),
        None,
        ACCEPT,
        ACCEPTED,
        ("CANCELLED", "Cancelled"),
        (RELEASE_OLD,),
    ),
    Case(
        "an-in-process-retry-keeps-the-slot",
        stored("RUNNING", deployment_concurrency_lease_id="lease-old"),
        propose("FAILED"),
        None,
        REJECT,
        rejected("Retrying"),
        ("SCHEDULED", "AwaitingRetry"),
        lease_id="lease-old",
        policy={"retries": 1},
    ),
    Case(
        "a-proposed-awaiting-retry-leaves-the-process-and-the-slot",
        stored("RUNNING", deployment_concurrency_lease_id="lease-old"),
        propose("SCHEDULED", "AwaitingRetry", scheduled_time=at(10)),
        None,
        ACCEPT,
        ACCEPTED,
        ("SCHEDULED", "AwaitingRetry"),
        (RELEASE_OLD,),
    ),
    Case(
        "a-run-without-a-lease-releases-nothing",
        stored("RUNNING"),
        propose("COMPLETED"),
        None,
        ACCEPT,
        ACCEPTED,
        ("COMPLETED", "Completed"),
    ),
    Case(
        "a-rejected-proposal-releases-nothing",
        stored("CANCELLING", deployment_concurrency_lease_id="lease-old"),
        propose("RUNNING"),
        None,
        REJECT,
        rejected("Cannot transition flows that are cancelling to a state other than Cancelled."),
        ("CANCELLING", "Cancelling"),
    ),
]


def view(case: Case) -> RunView:
    return RunView(
        state=case.current,
        run_count=1,
        empirical_policy=case.policy,
        start_time=STARTED,
        total_run_time=0.0,
        deployment_id="deployment-1",
        deployment_slots=case.slots,
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_deployment_concurrency(case: Case) -> None:
    decision = decide_flow_run(view(case), case.proposed, force=case.force, now=NOW)

    assert decision.status is case.status
    assert decision.details == case.details
    assert decision.state is not None
    assert (decision.state["type"], decision.state["name"]) == case.state
    assert decision.leases == case.leases
    if case.lease_id != "unchecked":
        assert decision.state["state_details"].get("deployment_concurrency_lease_id") == (
            case.lease_id
        )


def test_an_enqueued_run_is_due_again_shortly() -> None:
    case = CASES[2]
    decision = decide_flow_run(view(case), case.proposed, force=False, now=NOW)
    assert decision.state is not None
    assert decision.state["state_details"]["scheduled_time"] == at(AWAITING_SLOT_SECONDS)
    due = NOW + timedelta(seconds=AWAITING_SLOT_SECONDS)
    assert decision.run_update["next_scheduled_start_time"] == due
