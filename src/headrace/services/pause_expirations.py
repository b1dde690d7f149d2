"""Pause expirations: a paused run nobody resumed before its ``pause_timeout`` fails.

The run gets FAILED ``Failed`` with the reference's message, forced (as the
reference does: the pause is over whatever the rules would say), and its
``prefect.flow-run.Failed`` event is published. The service sleeps until the
earliest ``pause_timeout`` of a PAUSED run, or until a run pauses with an
earlier one (``notice``).
"""

from __future__ import annotations

from datetime import datetime

from headrace.orchestration import states
from headrace.services.due import DEFAULT_FALLBACK_SECONDS, Clock, DueService, Publish, utc_now
from headrace.storage import flow_runs, run_queries
from headrace.storage.db import Database
from headrace.storage.flow_runs import Transition
from headrace.types import StateType, WireDict

READ_BATCH = 500  # paused runs read per query
WRITE_BATCH = 50  # runs failed per write transaction
MESSAGE = "The flow was paused and never resumed."


def pause_deadline(state: WireDict | None) -> datetime | None:
    """The ``pause_timeout`` of a PAUSED state (None: not paused, or no timeout)."""
    if state is None or state.get("type") != StateType.PAUSED.value:
        return None
    return states.detail_time(state, "pause_timeout")


def is_expired(state: WireDict | None, now: datetime) -> bool:
    deadline = pause_deadline(state)
    return deadline is not None and deadline <= now


def split_expired(rows: list[WireDict], now: datetime) -> tuple[list[str], datetime | None]:
    """Paused runs (``id``, ``state``) → (ids whose pause has expired, next deadline)."""
    expired: list[str] = []
    upcoming: datetime | None = None
    for row in rows:
        deadline = pause_deadline(row["state"])
        if deadline is None:
            continue
        if deadline <= now:
            expired.append(str(row["id"]))
        elif upcoming is None or deadline < upcoming:
            upcoming = deadline
    return expired, upcoming


def failed_state() -> WireDict:
    return {"type": StateType.FAILED.value, "name": "Failed", "message": MESSAGE}


class PauseExpirations(DueService):
    """Fails paused runs whose pause timed out.

    Args:
        db: storage.
        publish: called with the flow-run state events of the runs failed.
        fallback: the longest sleep, in seconds.
        clock: the time source of ``loop``.
    """

    name = "pause-expirations"

    def __init__(
        self,
        db: Database,
        publish: Publish | None = None,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(publish, fallback, clock)
        self.db = db

    def notice(self, state: WireDict | None) -> None:
        if state is None:
            self.wake()
        else:
            self.wake_if_sooner(pause_deadline(state))

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        """Fail every expired pause; return the next pause deadline."""
        now = now or utc_now()
        expired: list[str] = []
        upcoming: datetime | None = None
        after: str | None = None
        while True:
            async with self.db.read() as conn:
                rows = await run_queries.paused_runs(conn, after, READ_BATCH)
            found, deadline = split_expired(rows, now)
            expired.extend(found)
            if deadline is not None and (upcoming is None or deadline < upcoming):
                upcoming = deadline
            if len(rows) < READ_BATCH:
                break
            after = str(rows[-1]["id"])
        for start in range(0, len(expired), WRITE_BATCH):
            failed: list[Transition] = []
            async with self.db.write() as conn:
                for run_id in expired[start : start + WRITE_BATCH]:
                    row = await run_queries.run_for_check(conn, run_id)
                    if row is None or not is_expired(row["state"], now):
                        continue  # resumed or deleted since it was read
                    transition = await flow_runs.set_flow_run_state(
                        conn, run_id, failed_state(), True, now
                    )
                    failed.append(transition)
            await self.publish_transitions(failed, now)
        return upcoming
