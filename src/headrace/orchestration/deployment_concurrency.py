"""Deployment concurrency: a deployment with ``concurrency_limit`` N runs at most N
flow runs at once.

A run takes a slot when it enters PENDING (workers and runners propose PENDING
before they start infrastructure), as a lease whose id goes into
``state_details.deployment_concurrency_lease_id``; the flow engine renews that
lease while the run is RUNNING. When no slot is free, the deployment's
``collision_strategy`` decides: ``ENQUEUE`` (the default) sends the run back to
SCHEDULED ``AwaitingConcurrencySlot``, a little later; ``CANCEL_NEW`` cancels it.
Entering RUNNING checks that the lease survived and renews it for the grace
period. The slot is released when the run leaves PENDING/RUNNING/CANCELLING for
any other state, except the in-process retry (``AwaitingRetry`` answered to a
FAILED proposal), during which the engine keeps renewing the lease.

The rules only decide; storage reads the limit under a lock into
`DeploymentSlots` and makes the `LeaseAction`\\ s of the decision.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from headrace.orchestration import states
from headrace.orchestration.decisions import Decision, LeaseAction, Transition
from headrace.types import SetStateStatus, StateType

LEASE_KEY = "deployment_concurrency_lease_id"
AWAITING_SLOT = "AwaitingConcurrencySlot"
REACHED = "Deployment concurrency limit reached."
# How much later an ENQUEUEd run is due again. Short, because polls
# (get_scheduled_flow_runs) do not offer a run of a deployment that has no free
# slot, so an early retry cannot turn into a busy loop.
AWAITING_SLOT_SECONDS = 5.0
DEFAULT_LEASE_SECONDS = 300.0
"""A lease secured at PENDING lasts this long unless the deployment sets
``grace_period_seconds`` (the reference's ``initial_deployment_lease_duration``)."""

_HOLDING = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})


def secure_slot(t: Transition) -> None:
    """Take a slot for a run entering PENDING, or turn it away.

    A limit of 0 would never admit the run: ABORT, as the reference does.
    """
    if t.to_type is not StateType.PENDING or t.from_type in _HOLDING:
        return
    slots = t.run.deployment_slots
    if slots is None or not slots.active:
        return
    if slots.limit == 0:
        t.abort("The deployment concurrency limit is 0. The flow will deadlock if submitted again.")
        return
    if slots.has_room:
        stale = states.details(t.initial).get(LEASE_KEY)
        if stale:
            t.provisional_leases.append(LeaseAction("release", str(stale)))
        t.proposed_details[LEASE_KEY] = slots.new_lease_id
        t.provisional_leases.append(
            LeaseAction("acquire", slots.new_lease_id, slots.limit_id, slots.lease_seconds)
        )
        return
    if slots.strategy == "CANCEL_NEW":
        t.reject(REACHED, state=states.new_state(StateType.CANCELLED, t.now, message=REACHED))
        return
    due = states.wire_time(t.now + timedelta(seconds=AWAITING_SLOT_SECONDS))
    waiting = states.new_state(StateType.SCHEDULED, t.now, name=AWAITING_SLOT, scheduled_time=due)
    t.reject(REACHED, state=waiting)


def validate_slot_at_running(t: Transition) -> None:
    """PENDING to RUNNING: renew the run's lease, or take a new slot if it expired.

    A run whose lease expired while its infrastructure started, on a deployment
    with no free slot, is cancelled: it cannot go back to waiting any more.
    """
    if t.from_type is not StateType.PENDING or t.to_type is not StateType.RUNNING:
        return
    lease_id = states.details(t.initial).get(LEASE_KEY)
    slots = t.run.deployment_slots
    if not lease_id or slots is None or not slots.active:
        return
    if slots.lease_live:
        t.provisional_leases.append(
            LeaseAction("renew", str(lease_id), slots.limit_id, slots.lease_seconds)
        )
        return
    if slots.has_room:
        t.proposed_details[LEASE_KEY] = slots.new_lease_id
        t.provisional_leases.append(LeaseAction("release", str(lease_id)))
        t.provisional_leases.append(
            LeaseAction("acquire", slots.new_lease_id, slots.limit_id, slots.lease_seconds)
        )
        return
    cancelled = states.new_state(
        StateType.CANCELLED,
        t.now,
        message="Deployment concurrency slot lost during provisioning - "
        "no slots available to continue execution",
    )
    t.reject("Deployment concurrency limit reached after lease expiry.", state=cancelled)


def with_lease_actions(t: Transition, decision: Decision) -> Decision:
    """The decision with the lease changes it implies.

    Acquire/renew hold only if the proposal went through; the current state's
    lease is released when the written state leaves PENDING/RUNNING/CANCELLING
    (forced transitions included), except for an in-process retry.
    """
    actions = list(t.provisional_leases) if t.goes_through else []
    written = decision.state if decision.write_state else None
    lease_id = states.details(t.initial).get(LEASE_KEY)
    if written is not None and lease_id and t.from_type in _HOLDING:
        new_type = StateType(written["type"])
        retrying = (
            new_type is StateType.SCHEDULED
            and written.get("name") == "AwaitingRetry"
            and decision.status is SetStateStatus.REJECT
        )
        release = LeaseAction("release", str(lease_id))
        if new_type not in _HOLDING and not retrying and release not in actions:
            actions.append(release)
    if not actions:
        return decision
    return dataclasses.replace(decision, leases=tuple(actions))
