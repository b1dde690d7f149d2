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
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists
from headrace.scheduling import next_occurrences, parse_schedule
from headrace.scheduling.schedules import ScheduleError
from headrace.storage import deployments, flow_runs, scheduling
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

BATCH = 200  # schedules read per query
CHUNK = 25  # schedules topped up per transaction (keeps SQLite's writer free for the API)


class Scheduler:
    """Keeps every live schedule materialised ``horizon`` ahead (and ``min_runs`` runs).

    Args:
        db: storage.
        horizon: how far ahead runs exist.
        min_runs: at least this many future runs per schedule after each top-up.
        max_runs: at most this many runs created per schedule per pass.
        publish: called with the flow-run state events of the runs created.
        refill: how far past the horizon a top-up reaches. With a refill, a schedule
            is topped up once per ``refill`` rather than once per occurrence, and a
            pass also takes the schedules due within the next half refill, so
            many schedules share one pass (1000 minutely deployments: a pass
            every few minutes instead of ~17 a second).
    """

    def __init__(
        self,
        db: Database,
        horizon: timedelta,
        min_runs: int = 3,
        max_runs: int = 100,
        publish: Callable[[list[WireDict]], Awaitable[None]] | None = None,
        refill: timedelta = timedelta(0),
    ) -> None:
        self.db = db
        self.horizon = horizon
        self.refill = refill
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
        soon = now + self.horizon + self.refill / 2
        fill_end = now + self.horizon + self.refill
        while True:
            async with self.db.read() as conn:
                due = await scheduling.schedules_due(conn, soon, BATCH)
            for first in range(0, len(due), CHUNK):
                await self._top_up(due[first : first + CHUNK], now, fill_end)
            if len(due) < BATCH:
                break
        async with self.db.read() as conn:
            earliest = await scheduling.earliest_cursor(conn)
        self.last_pass = now
        self.last_pass_seconds = time.monotonic() - started
        return None if earliest is None else earliest - self.horizon - self.refill / 2

    def _wanted(self, row: WireDict, now: datetime, horizon_end: datetime) -> list[datetime]:
        """The occurrences ``row`` should have next (empty: the schedule is finished)."""
        schedule = parse_schedule(row["schedule"])
        cursor = max(row["cursor"] or now, now)
        limit = min(row["max_scheduled_runs"] or self.max_runs, self.max_runs)
        wanted = next_occurrences(schedule, cursor, horizon_end, limit)
        if len(wanted) < self.min_runs:
            wanted = next_occurrences(schedule, cursor, None, min(self.min_runs, limit))
        return wanted

    async def _top_up(self, rows: list[WireDict], now: datetime, horizon_end: datetime) -> None:
        """Materialise the next runs of ``rows`` in one short transaction."""
        plans: list[tuple[WireDict, list[datetime]]] = []
        for row in rows:
            try:
                plans.append((row, self._wanted(row, now, horizon_end)))
            except ScheduleError as exc:
                logger.error("schedule %s cannot be computed (%s); skipping it", row["id"], exc)
        # A finished schedule (an RRULE with COUNT/UNTIL) parks its cursor far ahead.
        parked = horizon_end + timedelta(days=365 * 100)
        try:
            async with self.db.write() as conn:
                by_flow: dict[str, list[WireDict]] = defaultdict(list)
                cursors: dict[str, datetime] = {}
                for row, wanted in plans:
                    cursors[row["id"]] = wanted[-1] if wanted else parked
                    if wanted:
                        base = await self._run_body(conn, row, now)
                        by_flow[base["flow_id"]] += [
                            self._occurrence(base, row, occurrence) for occurrence in wanted
                        ]
                created = [
                    run
                    for bodies in by_flow.values()
                    for run in await flow_runs.create_flow_runs(conn, bodies, now)
                ]
                await scheduling.advance_cursors(conn, cursors)
        except AlreadyExists:
            # Another scheduler materialised some of these meanwhile; its cursors
            # moved too, and the next pass starts from there.
            return
        self.runs_created += len(created)
        if self.publish is not None and created:
            await self.publish(created)

    @staticmethod
    async def _run_body(conn: AsyncConnection, row: WireDict, now: datetime) -> WireDict:
        return await deployments.flow_run_body(
            conn,
            row["deployment_id"],
            {
                "parameters": row["parameters"] or {},
                # As the reference's scheduler: schedule parameters are the
                # deployment author's, not a caller's, to check.
                "enforce_parameter_schema": False,
            },
            now,
        )

    @staticmethod
    def _occurrence(base: WireDict, row: WireDict, occurrence: datetime) -> WireDict:
        return {
            **base,
            "state": {
                "type": "SCHEDULED",
                "name": "Scheduled",
                "state_details": {"scheduled_time": occurrence.isoformat()},
            },
            # The reference's key: a restart or a second scheduler cannot duplicate.
            "idempotency_key": f"scheduled {row['deployment_id']} {row['id']} {occurrence}",
            "auto_scheduled": True,
        }

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
