"""What the rules read (`RunView`), what they answer (`Decision`), and the
working record a set of rules edits while deciding (`Transition`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from headrace.orchestration import states
from headrace.types import SetStateStatus, StateType, WireDict


@dataclass(frozen=True)
class DeploymentSlots:
    """A flow run's deployment concurrency limit, read (and locked) for one decision.

    Attributes:
        limit_id: The deployment's v2 limit.
        limit: Its number of slots.
        active: Whether the limit is enforced.
        has_room: Whether one more slot fits now.
        strategy: ``ENQUEUE`` or ``CANCEL_NEW``: what happens to a run that finds no slot.
        lease_seconds: How long a lease secured or renewed by the server lasts
            (the deployment's ``grace_period_seconds``, else the default).
        lease_live: Whether the lease named in the run's current state is live
            and covers this limit.
        new_lease_id: The id a lease secured by this transition gets.
    """

    limit_id: str
    limit: int
    active: bool
    has_room: bool
    strategy: str
    lease_seconds: float
    lease_live: bool
    new_lease_id: str


@dataclass(frozen=True)
class LeaseAction:
    """A change to a deployment concurrency lease that a decision asks storage to make.

    Attributes:
        kind: ``acquire`` a new lease on ``limit_id``, ``renew`` it, or ``release`` it.
        lease_id: The lease.
        limit_id: The deployment's limit (acquire and renew).
        seconds: The lease's new duration (acquire and renew).
    """

    kind: Literal["acquire", "renew", "release"]
    lease_id: str
    limit_id: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class RunView:
    """What the rules see of the run being transitioned.

    The fields after ``deployment_id`` are optional context; when the caller
    leaves one at its default, the rule that needs it is skipped.

    Attributes:
        state: The current state in wire form, or ``None`` for a run without one.
        run_count: Times the run has entered RUNNING.
        empirical_policy: The run's retry/pause policy dict.
        start_time: When the run first entered RUNNING.
        total_run_time: Seconds spent RUNNING so far.
        infrastructure_pid: Flow runs: the pid a worker/runner recorded.
        deployment_id: Flow runs: the deployment, if any.
        flow_run_run_count: Task runs: the enclosing flow run's run_count when
            this task run last entered RUNNING.
        run_id: The run's own id, written into new states' ``state_details``
            (``flow_run_id`` for flow runs, ``task_run_id`` for task runs).
        flow_run_id: Task runs: the enclosing flow run's id (``None`` for a
            background task); written to ``state_details`` with ``run_id``.
        parent_task_run_id: Flow runs: the subflow's tracking task run.
        enclosing_flow_run_count: Task runs: the enclosing flow run's current
            run_count; ``None`` when unknown or there is no flow run.
        enclosing_flow_state: Task runs: the enclosing flow run's current
            state; ``None`` when unknown or there is no flow run.
        deployment_slots: Flow runs: the deployment's concurrency limit, when
            it has one and the proposal may take or keep a slot.
    """

    state: WireDict | None
    run_count: int
    empirical_policy: WireDict
    start_time: datetime | None
    total_run_time: float
    infrastructure_pid: str | None = None
    deployment_id: str | None = None
    flow_run_run_count: int = 0
    run_id: str | None = None
    flow_run_id: str | None = None
    parent_task_run_id: str | None = None
    enclosing_flow_run_count: int | None = None
    enclosing_flow_state: WireDict | None = None
    deployment_slots: DeploymentSlots | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of orchestrating one proposed state.

    Attributes:
        status: ACCEPT, REJECT, WAIT or ABORT.
        state: The state to return to the client. When ``write_state`` it is the
            new state without ``id`` (the caller assigns one); otherwise the run's
            current state, or ``None`` if it has none.
        details: The OrchestrationResult ``details`` object.
        write_state: Whether ``state`` must be stored as the run's new state.
        run_update: Run columns to change along with the written state.
        leases: Deployment concurrency lease changes to make with it.
    """

    status: SetStateStatus
    state: WireDict | None
    details: WireDict
    write_state: bool
    run_update: WireDict
    leases: tuple[LeaseAction, ...] = ()


ACCEPT_DETAILS: WireDict = {"type": "accept_details"}

Hook = Callable[["Transition", WireDict], None]
"""Runs after bookkeeping, only if the state is written: (transition, written state)."""


@dataclass
class Transition:
    """One proposed transition while the rules decide on it.

    Rules read ``initial``/``proposed``, may edit ``proposed`` and ``policy``,
    and settle the outcome with `reject`, `wait` or `abort`. Once settled no
    further rule runs: every later rule in the reference ordering is keyed to the
    originally proposed state type, which a settled transition no longer has.

    Attributes:
        run: The run as the caller read it.
        initial: The current state (a deep copy), or ``None``.
        proposed: The completed proposed state; rules may edit it.
        now: The server's clock for this decision.
        policy: Working copy of ``empirical_policy``; kept if a state is written.
        status: The outcome so far.
        details: The ``details`` answer so far.
        replacement: A server-made state to write instead of ``proposed``.
        settled: Whether a rule has decided the outcome.
        provisional_policy: Policy changes kept only if the transition goes
            through as proposed (the reference reverts them otherwise).
        provisional_run: Run-column overrides with the same condition.
        after_write: Hooks to run once the written state is known.
        provisional_leases: Lease changes kept only if the transition goes
            through as proposed.
    """

    run: RunView
    initial: WireDict | None
    proposed: WireDict
    now: datetime
    policy: WireDict
    status: SetStateStatus = SetStateStatus.ACCEPT
    details: WireDict = field(default_factory=lambda: dict(ACCEPT_DETAILS))
    replacement: WireDict | None = None
    settled: bool = False
    provisional_policy: WireDict = field(default_factory=dict)
    provisional_run: WireDict = field(default_factory=dict)
    after_write: list[Hook] = field(default_factory=list)
    provisional_leases: list[LeaseAction] = field(default_factory=list)

    @classmethod
    def start(cls, run: RunView, proposed: WireDict, now: datetime) -> Transition:
        """Begin deciding on ``proposed`` for ``run``.

        Raises:
            ValueError: If the proposed type is not a state type.
        """
        return cls(
            run=run,
            initial=copy.deepcopy(run.state),
            proposed=states.complete_state(proposed, now),
            now=now,
            policy=copy.deepcopy(run.empirical_policy),
        )

    @property
    def from_type(self) -> StateType | None:
        """The current state's type."""
        return states.state_type(self.initial)

    @property
    def to_type(self) -> StateType:
        """The proposed state's type."""
        return StateType(self.proposed["type"])

    @property
    def proposed_details(self) -> WireDict:
        """The proposed state's ``state_details`` (mutable)."""
        state_details: WireDict = self.proposed["state_details"]
        return state_details

    def reject(self, reason: str, state: WireDict | None = None) -> None:
        """Refuse the proposal; write ``state`` instead if given.

        Without a replacement the client gets the current state back.
        """
        self._settle(SetStateStatus.REJECT, {"type": "reject_details", "reason": reason})
        self.replacement = state

    def wait(self, delay_seconds: int, reason: str) -> None:
        """Tell the client to propose the same state again after a delay."""
        details = {"type": "wait_details", "delay_seconds": delay_seconds, "reason": reason}
        self._settle(SetStateStatus.WAIT, details)

    def abort(self, reason: str) -> None:
        """Tell the client to stop orchestrating this run."""
        self._settle(SetStateStatus.ABORT, {"type": "abort_details", "reason": reason})

    def _settle(self, status: SetStateStatus, details: WireDict) -> None:
        self.status = status
        self.details = details
        self.settled = True

    @property
    def state_to_write(self) -> WireDict | None:
        """The state that will be stored, or ``None`` if nothing is written."""
        if self.status is SetStateStatus.ACCEPT:
            return self.proposed
        if self.status is SetStateStatus.REJECT:
            return self.replacement
        return None

    @property
    def goes_through(self) -> bool:
        """Whether the written state has the proposed type (the rules did not
        swap it), which is when provisional changes are kept."""
        written = self.state_to_write
        return written is not None and written["type"] == self.proposed["type"]


Rule = Callable[[Transition], None]
"""A rule inspects a transition and may edit or settle it."""


def run_rules(transition: Transition, rules: tuple[Rule, ...]) -> None:
    """Apply ``rules`` in order until one settles the transition."""
    for rule in rules:
        if transition.settled:
            return
        rule(transition)
