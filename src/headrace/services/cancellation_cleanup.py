"""Cancellation cleanup: what a cancelled parent leaves behind, and runs stuck cancelling.

Two jobs, as the reference does them:

- The unfinished children of a CANCELLED flow run are cancelled. A subflow run
  (a flow run whose ``parent_task_run_id`` is one of the parent's task runs)
  with a deployment runs on infrastructure of its own, so it gets CANCELLING
  (its worker or ``serve`` process tears it down; the rules turn a SCHEDULED one
  without infrastructure straight into CANCELLED); an in-process subflow gets
  CANCELLED. The parent's unfinished task runs get CANCELLED (forced).
  Parents are found by when they entered CANCELLED, from a cursor: each pass
  looks at the parents cancelled since the previous one (with some overlap for
  transactions that committed late), so the cost follows the cancellations,
  not the history. A subflow cancelled here is a parent too: the pass repeats
  until no new one appears.
- A run in CANCELLING for longer than ``cancelling_timeout`` (nobody finished
  the cancellation: its worker or runner is gone) is moved to CANCELLED with
  the reference's message.

The service sleeps until the oldest CANCELLING run times out, or until a run
is cancelled or starts cancelling (``notice``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from headrace.orchestration import states
from headrace.services.due import DEFAULT_FALLBACK_SECONDS, Clock, DueService, Publish, utc_now
from headrace.storage import flow_runs, run_queries, task_runs
from headrace.storage.db import Database
from headrace.storage.flow_runs import Transition
from headrace.types import TERMINAL_STATES, StateType, WireDict

BATCH = 50  # parents read per query; runs changed per write transaction
# How far back the first pass looks for cancelled parents (the reference's window).
LOOKBACK = timedelta(days=1)
# Overlap between passes: a cancellation stamped before a pass may commit after it.
OVERLAP = timedelta(minutes=1)
MAX_ROUNDS = 20  # nesting depth of subflows followed in one pass

PARENT_CANCELLED = "The parent flow run was cancelled."
TIMED_OUT = "Flow run cancellation timed out; marked this flow run as Cancelled."
_TERMINAL = {s.value for s in TERMINAL_STATES}


def subflow_proposal(row: WireDict) -> WireDict | None:
    """The state for a subflow whose parent was cancelled (None: leave it alone)."""
    state_type = row.get("state_type")
    if state_type is None or state_type in _TERMINAL:
        return None
    if row.get("deployment_id"):
        if state_type == StateType.CANCELLING.value:
            return None  # its infrastructure is already being torn down
        return {
            "type": StateType.CANCELLING.value,
            "name": "Cancelling",
            "message": PARENT_CANCELLED,
        }
    return {"type": StateType.CANCELLED.value, "name": "Cancelled", "message": PARENT_CANCELLED}


def task_cancelled_state() -> WireDict:
    return {"type": StateType.CANCELLED.value, "name": "Cancelled", "message": PARENT_CANCELLED}


def timed_out_state() -> WireDict:
    return {"type": StateType.CANCELLED.value, "name": "Cancelled", "message": TIMED_OUT}


def is_stuck(row: WireDict | None, cutoff: datetime) -> bool:
    """Whether a run has been CANCELLING since ``cutoff`` or earlier."""
    if row is None or row.get("state_type") != StateType.CANCELLING.value:
        return False
    entered = row.get("state_timestamp")
    return entered is not None and entered <= cutoff


class CancellationCleanup(DueService):
    """Cancels the children of cancelled runs and finishes stale cancellations.

    Args:
        db: storage.
        cancelling_timeout: how long a run may stay CANCELLING (reference: 300 s).
        publish: called with the flow-run state events of the runs changed.
        fallback: the longest sleep, in seconds.
        clock: the time source of ``loop``.
    """

    name = "cancellation-cleanup"

    def __init__(
        self,
        db: Database,
        cancelling_timeout: timedelta,
        publish: Publish | None = None,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(publish, fallback, clock)
        self.db = db
        self.cancelling_timeout = cancelling_timeout
        self.since: datetime | None = None  # parents cancelled from here on are unchecked

    def due_at(self, oldest_cancelling: datetime | None) -> datetime | None:
        """When the run that entered CANCELLING at ``oldest_cancelling`` times out."""
        return None if oldest_cancelling is None else oldest_cancelling + self.cancelling_timeout

    def parents_window(self, now: datetime) -> datetime:
        """From when this pass looks for cancelled parents."""
        if self.since is None:
            return now - LOOKBACK
        return self.since - OVERLAP

    def notice(self, state: WireDict | None) -> None:
        if state is None or state.get("type") == StateType.CANCELLED.value:
            self.wake()
        elif state.get("type") == StateType.CANCELLING.value:
            self.wake_if_sooner(self.due_at(states.parse_time(state.get("timestamp"))))

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        """Clean up after cancelled parents and stuck cancellations; return the next timeout."""
        now = now or utc_now()
        since = self.parents_window(now)
        for _ in range(MAX_ROUNDS):
            if not await self._children_of_cancelled(since, now):
                break
            since = now  # next round: the subflows this round cancelled
        self.since = now
        await self._stuck_cancelling(now)
        async with self.db.read() as conn:
            oldest = await run_queries.earliest_entered(conn, StateType.CANCELLING)
        return self.due_at(oldest)

    async def _children_of_cancelled(self, since: datetime, now: datetime) -> int:
        """Cancel the children of runs cancelled since ``since``; count subflows CANCELLED."""
        cancelled = 0
        after: tuple[datetime, str] | None = None
        while True:
            async with self.db.read() as conn:
                page = await run_queries.entered_since(
                    conn, StateType.CANCELLED, since, after, BATCH
                )
                parents = [run_id for _, run_id in page]
                subflows = await run_queries.unfinished_subflows(conn, parents)
                tasks = await run_queries.unfinished_task_runs(conn, parents)
            for start in range(0, len(subflows), BATCH):
                changed = await self._cancel_subflows(subflows[start : start + BATCH], now)
                cancelled += sum(
                    1 for tr in changed if (tr.written or {}).get("type") == "CANCELLED"
                )
            for start in range(0, len(tasks), BATCH):
                async with self.db.write() as conn:
                    for task_run_id in tasks[start : start + BATCH]:
                        current = await run_queries.task_run_state_type(conn, task_run_id)
                        if current is None or current in _TERMINAL:
                            continue  # finished, or mirrored from its subflow meanwhile
                        await task_runs.set_task_run_state(
                            conn, task_run_id, task_cancelled_state(), True, now
                        )
            if len(page) < BATCH:
                return cancelled
            after = page[-1]

    async def _cancel_subflows(self, rows: list[WireDict], now: datetime) -> list[Transition]:
        changed: list[Transition] = []
        async with self.db.write() as conn:
            for listed in rows:
                row = await run_queries.run_for_check(conn, listed["id"])
                proposed = None if row is None else subflow_proposal(row)
                if proposed is None:
                    continue  # finished or changed since it was read
                transition = await flow_runs.set_flow_run_state(
                    conn, listed["id"], proposed, False, now
                )
                if transition.written is not None:
                    changed.append(transition)
        await self.publish_transitions(changed, now)
        return changed

    async def _stuck_cancelling(self, now: datetime) -> None:
        cutoff = now - self.cancelling_timeout
        while True:
            async with self.db.read() as conn:
                candidates = await run_queries.entered_before(
                    conn, StateType.CANCELLING, cutoff, BATCH
                )
            if not candidates:
                return
            finished: list[Transition] = []
            async with self.db.write() as conn:
                for run_id in candidates:
                    row = await run_queries.run_for_check(conn, run_id)
                    if not is_stuck(row, cutoff):
                        continue
                    transition = await flow_runs.set_flow_run_state(
                        conn, run_id, timed_out_state(), False, now
                    )
                    if transition.written is not None:
                        finished.append(transition)
            await self.publish_transitions(finished, now)
            if len(candidates) < BATCH or not finished:
                return
