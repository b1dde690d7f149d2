"""The scheduler: materialises deployment runs ahead of time, sleeping in between.

Each schedule keeps a cursor (its last materialised occurrence). A pass tops up
every schedule whose runs no longer reach ``now + horizon``, computing occurrences
forward from the cursor (never from a historical anchor), then the service sleeps
until the least advanced cursor comes within the horizon again — or until a
deployment or schedule changes (``wake()``). Runs are inserted with the same
idempotency key the reference uses (``scheduled <deployment> <schedule> <time>``)
so a restart or a second scheduler can never create a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from headrace.errors import AlreadyExists
from headrace.scheduling import next_occurrences, parse_schedule
from headrace.scheduling.schedules import ScheduleError
from headrace.storage import deployments, flow_runs, scheduling
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

BATCH = 200  # schedules topped up per transaction


class Scheduler:
    """Keeps every live schedule materialised ``horizon`` ahead (and ``min_runs`` runs).

    Args:
        db: storage.
        horizon: how far ahead runs exist.
        min_runs: at least this many future runs per schedule after each top-up.
        max_runs: at most this many runs created per schedule per pass.
        publish: called with the flow-run state events of the runs created.
    """

    def __init__(
        self,
        db: Database,
        horizon: timedelta,
        min_runs: int = 3,
        max_runs: int = 100,
        publish: Callable[[list[WireDict]], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.horizon = horizon
        self.min_runs = min_runs
        self.max_runs = max_runs
        self.publish = publish
        self._wake = asyncio.Event()
        self.last_pass: datetime | None = None
        self.last_pass_seconds = 0.0
        self.runs_created = 0

    def wake(self) -> None:
        """A deployment or schedule changed: look again now."""
        self._wake.set()

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        """Top up every schedule that needs it; return when the next pass is due."""
        started = time.monotonic()
        now = now or datetime.now(UTC)
        horizon_end = now + self.horizon
        while True:
            async with self.db.read() as conn:
                due = await scheduling.schedules_due(conn, horizon_end, BATCH)
            for schedule in due:
                await self._top_up(schedule, now, horizon_end)
            if len(due) < BATCH:
                break
        async with self.db.read() as conn:
            earliest = await scheduling.earliest_cursor(conn)
        self.last_pass = now
        self.last_pass_seconds = time.monotonic() - started
        return None if earliest is None else earliest - self.horizon

    async def _top_up(self, row: WireDict, now: datetime, horizon_end: datetime) -> None:
        try:
            schedule = parse_schedule(row["schedule"])
        except ScheduleError as exc:
            logger.error("schedule %s cannot be computed (%s); skipping it", row["id"], exc)
            return
        cursor = max(row["cursor"] or now, now)
        limit = min(row["max_scheduled_runs"] or self.max_runs, self.max_runs)
        wanted = next_occurrences(schedule, cursor, horizon_end, limit)
        if len(wanted) < self.min_runs:
            wanted = next_occurrences(schedule, cursor, None, min(self.min_runs, limit))
        if not wanted:
            # A finished schedule (an RRULE with COUNT/UNTIL): park its cursor far ahead.
            wanted_cursor = horizon_end + timedelta(days=365 * 100)
            async with self.db.write() as conn:
                await scheduling.advance_cursor(conn, row["id"], wanted_cursor)
            return
        events = []
        try:
            async with self.db.write() as conn:
                for occurrence in wanted:
                    body = await deployments.flow_run_body(
                        conn,
                        row["deployment_id"],
                        {
                            "state": {
                                "type": "SCHEDULED",
                                "name": "Scheduled",
                                "state_details": {"scheduled_time": occurrence.isoformat()},
                            },
                            "parameters": row["parameters"] or {},
                            "idempotency_key": (
                                f"scheduled {row['deployment_id']} {row['id']} {occurrence}"
                            ),
                            "auto_scheduled": True,
                        },
                        now,
                    )
                    body["auto_scheduled"] = True
                    run, created = await flow_runs.create_flow_run(conn, body, now)
                    if created:
                        events.append(run)
                await scheduling.advance_cursor(conn, row["id"], wanted[-1])
        except AlreadyExists:
            # Another scheduler materialised the same occurrence meanwhile; its
            # cursor moved too, and the next pass starts from there.
            return
        self.runs_created += len(events)
        if self.publish is not None and events:
            await self.publish(events)

    async def loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.run_once()
            except Exception:
                logger.exception("scheduler pass failed; retrying in 30 s")
                due = datetime.now(UTC) + timedelta(seconds=30)
            delay = 3600.0 if due is None else (due - datetime.now(UTC)).total_seconds()
            delay = min(max(delay, 0.5), 3600.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
