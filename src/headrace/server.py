"""The parts of one headrace process, wired explicitly, started and stopped together."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import UTC, datetime, timedelta

from headrace.events import emit
from headrace.events.pipeline import Pipeline
from headrace.events.stream import Broadcaster
from headrace.services.cancellation_cleanup import CancellationCleanup
from headrace.services.late_runs import LateRuns
from headrace.services.pause_expirations import PauseExpirations
from headrace.services.retention import Retention
from headrace.services.scheduler import Scheduler
from headrace.services.supervisor import Supervisor
from headrace.settings import Settings
from headrace.storage import flow_runs
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)


class Server:
    """Settings, storage, the event pipeline and the services of one process.

    Args:
        settings: the frozen settings.
        services: run the background services (``--no-services`` turns them off).
    """

    def __init__(self, settings: Settings, services: bool = True) -> None:
        self.settings = settings
        self.db = Database(settings, component="api")
        self.broadcaster = Broadcaster()
        self.pipeline = Pipeline(self.db, settings, self.broadcaster)
        self.retention = Retention(self.db, settings)
        self.scheduler = Scheduler(
            self.db,
            horizon=timedelta(seconds=settings.scheduler_horizon_seconds),
            min_runs=settings.scheduler_min_runs,
            publish=self._announce_runs,
        )
        fallback = settings.services_fallback_seconds
        self.late_runs = LateRuns(
            self.db,
            after=timedelta(seconds=settings.late_runs_after_seconds),
            publish=self.pipeline.publish,
            fallback=fallback,
        )
        self.pause_expirations = PauseExpirations(
            self.db, publish=self.pipeline.publish, fallback=fallback
        )
        self.cancellation_cleanup = CancellationCleanup(
            self.db,
            cancelling_timeout=timedelta(seconds=settings.cancelling_timeout_seconds),
            publish=self.pipeline.publish,
            fallback=fallback,
        )
        self.supervisor = Supervisor()
        self.supervisor.add("event-pipeline", self.pipeline.run)
        if services:
            self.supervisor.add("retention", self.retention.loop)
            self.supervisor.add("scheduler", self.scheduler.loop)
            for service in self._flow_run_services():
                self.supervisor.add(service.name, service.loop)

    def _flow_run_services(self) -> tuple[LateRuns, PauseExpirations, CancellationCleanup]:
        return (self.late_runs, self.pause_expirations, self.cancellation_cleanup)

    def deployments_changed(self) -> None:
        """Called by the API after a deployment or schedule write commits."""
        self.scheduler.wake()

    def flow_runs_changed(self, state: WireDict | None = None) -> None:
        """Called after a flow-run write commits; ``state`` is the state the run entered.

        Each flow-run service wakes only when the change can make something due
        sooner than the moment it sleeps until (``None``: unknown change, all wake).
        """
        for service in self._flow_run_services():
            service.notice(state)

    async def _announce_runs(self, runs: list[WireDict]) -> None:
        """Publish the ``prefect.flow-run.Scheduled`` events of runs the scheduler made."""
        for run in runs:
            self.flow_runs_changed(run["state"])
        now = datetime.now(UTC)
        async with self.db.read() as conn:
            names = {
                fid: await flow_runs.flow_name(conn, fid) for fid in {r["flow_id"] for r in runs}
            }
        await self.pipeline.publish(
            [emit.flow_run_state_event(r, r["state"], None, names[r["flow_id"]], now) for r in runs]
        )

    async def start(self) -> None:
        # Everything loaded so far lives for the whole process; keeping it out of
        # the collector's generations makes full collections during an event
        # flood cheap, which keeps request latency flat.
        gc.collect()
        gc.freeze()
        self.supervisor.start()

    async def stop(self) -> None:
        """Stop every part independently: one failing stop does not skip the others."""
        deadline = self.settings.shutdown_timeout
        steps = (
            ("flush event queue", lambda: self.pipeline.drain(deadline)),
            ("stop services", lambda: self.supervisor.stop(deadline)),
            ("close database", self.db.dispose),
        )
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), deadline + 1)
            except Exception:
                logger.exception("shutdown step %r failed", name)
