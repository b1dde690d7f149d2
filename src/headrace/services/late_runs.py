"""Late runs: a run still ``Scheduled`` well past its start becomes ``Late``.

A SCHEDULED run named ``Scheduled`` whose scheduled start is more than
``after`` in the past is proposed the SCHEDULED state ``Late`` (same scheduled
time) through the flow-run rules, and its ``prefect.flow-run.Late`` event is
published. The service sleeps until the earliest such start plus ``after``, or
until a run is scheduled earlier than that (``notice``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from headrace.orchestration import states
from headrace.services.due import DEFAULT_FALLBACK_SECONDS, Clock, DueService, Publish, utc_now
from headrace.storage import flow_runs, run_queries
from headrace.storage.db import Database
from headrace.types import StateType, WireDict

BATCH = 50  # runs marked per write transaction


def is_late(row: WireDict | None, cutoff: datetime) -> bool:
    """Whether a run (as read by ``run_queries.run_for_check``) should be marked Late."""
    if row is None:
        return False
    start = row.get("next_scheduled_start_time")
    return (
        row.get("state_type") == StateType.SCHEDULED.value
        and row.get("state_name") == "Scheduled"
        and start is not None
        and start <= cutoff
    )


def late_state(scheduled_time: datetime) -> WireDict:
    """The proposed ``Late`` state, keeping the run's scheduled time."""
    return {
        "type": StateType.SCHEDULED.value,
        "name": "Late",
        "state_details": {"scheduled_time": states.wire_time(scheduled_time)},
    }


class LateRuns(DueService):
    """Marks runs Late ``after`` past their scheduled start.

    Args:
        db: storage.
        after: how far past its start a run must be (the reference's default is 15 s).
        publish: called with the flow-run state events of the runs marked.
        fallback: the longest sleep, in seconds.
        clock: the time source of ``loop``.
        window: how long a pass waits after the first run turns Late, so that the
            runs turning Late meanwhile share its transaction.
    """

    name = "late-runs"

    def __init__(
        self,
        db: Database,
        after: timedelta,
        publish: Publish | None = None,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
        window: timedelta = timedelta(0),
    ) -> None:
        super().__init__(publish, fallback, clock, window)
        self.db = db
        self.after = after

    def due_at(self, earliest_start: datetime | None) -> datetime | None:
        """When the run starting at ``earliest_start`` turns Late."""
        return None if earliest_start is None else earliest_start + self.after

    def notice(self, state: WireDict | None) -> None:
        if state is None:
            self.wake()
            return
        if state.get("type") != StateType.SCHEDULED.value or state.get("name") != "Scheduled":
            return
        self.wake_if_sooner(self.due_at(states.detail_time(state, "scheduled_time")))

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        """Mark every overdue run Late; return when the next one will be overdue."""
        now = now or utc_now()
        cutoff = now - self.after

        def propose(row: WireDict) -> WireDict | None:
            # Started or rescheduled since it was read: leave it.
            return late_state(row["next_scheduled_start_time"]) if is_late(row, cutoff) else None

        while True:
            async with self.db.read() as conn:
                candidates = await run_queries.scheduled_before(conn, cutoff, BATCH)
            if not candidates:
                break
            async with self.db.write() as conn:
                transitions = await flow_runs.set_flow_run_states(conn, candidates, propose, now)
            marked = [tr for tr in transitions if tr.written is not None]
            await self.publish_transitions(marked, now)
            if len(candidates) < BATCH or not marked:
                break  # done, or nothing in a full batch could be marked: no spinning
        async with self.db.read() as conn:
            earliest = await run_queries.earliest_scheduled_start(conn)
        return self.due_at(earliest)
