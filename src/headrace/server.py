"""The parts of one headrace process, wired explicitly, started and stopped together.

One process may serve the API, run singleton services, or both. The singleton
services run where their lease is held (``services/leases.py``); notices that
wake them (a deployment changed, a flow run entered a state) travel on the bus,
which on Postgres also reaches the other processes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from headrace import messaging
from headrace.errors import ConfigError
from headrace.events import emit
from headrace.events.pipeline import Pipeline
from headrace.events.relay import EventRelay
from headrace.events.stream import Broadcaster
from headrace.services.cancellation_cleanup import CancellationCleanup
from headrace.services.late_runs import LateRuns
from headrace.services.lease_expiry import LeaseExpiry
from headrace.services.leases import LeaseKeeper
from headrace.services.pause_expirations import PauseExpirations
from headrace.services.retention import Retention
from headrace.services.scheduler import Scheduler
from headrace.services.slot_waiters import SlotWaiters
from headrace.services.supervisor import ServiceLoop, Supervisor
from headrace.services.task_redelivery import TaskRedelivery
from headrace.settings import Settings
from headrace.storage import flow_runs
from headrace.storage.db import Database
from headrace.task_queue import TaskQueue
from headrace.types import WireDict

if TYPE_CHECKING:
    from headrace.celery_monitor.service import CeleryMonitor

logger = logging.getLogger(__name__)

# What each singleton service does, as ``headrace services ls`` shows it.
SERVICES: dict[str, str] = {
    "scheduler": "materialises deployment schedules into scheduled runs",
    "late-runs": "marks scheduled runs nobody started Late",
    "pause-expirations": "fails paused runs whose pause timed out",
    "cancellation-cleanup": "cancels subflows of cancelled runs; ends stuck cancellations",
    "retention": "trims old events and logs",
    "task-redelivery": "requeues background task runs whose task worker went away",
    "lease-expiry": "frees the slots of concurrency leases nobody renewed",
    "celery-monitor": "folds Celery events into tasks and workers (HEADRACE_CELERY_BROKER_URL)",
}

# Flow-run states that end a deployment run's hold on its concurrency slot.
_SLOT_FREEING = frozenset({"COMPLETED", "FAILED", "CANCELLED", "CRASHED", "SCHEDULED"})

_EVENT_IDS_PER_NOTICE = 150  # keeps a notice under Postgres' 8000-byte payload limit


def _state_notice(state: WireDict | None) -> WireDict:
    """The part of a flow-run state the services decide on (small enough to send)."""
    if state is None:
        return {"state": None}
    details = state.get("state_details") or {}
    return {
        "state": {
            "type": state.get("type"),
            "name": state.get("name"),
            "timestamp": state.get("timestamp"),
            "state_details": {
                "scheduled_time": details.get("scheduled_time"),
                "pause_timeout": details.get("pause_timeout"),
                "deployment_concurrency_lease_id": details.get("deployment_concurrency_lease_id"),
            },
        }
    }


class Server:
    """Settings, storage, the event pipeline and the services of one process.

    Args:
        settings: the frozen settings.
        api: this process serves the API (it relays other processes' events to
            its ``/events/out`` subscribers).
        services: the singleton services this process may run (None: all of them).
    """

    def __init__(
        self, settings: Settings, api: bool = True, services: Collection[str] | None = None
    ) -> None:
        self.settings = settings
        self.api = api
        self.db = Database(settings, component="api" if api else "services")
        self.bus = messaging.create(settings)
        self.broadcaster = Broadcaster()
        self.pipeline = Pipeline(self.db, settings, self.broadcaster, self._events_committed)
        self.relay = EventRelay(self.db, self.broadcaster)
        self.retention = Retention(self.db, settings)
        self.scheduler = Scheduler(
            self.db,
            horizon=timedelta(seconds=settings.scheduler_horizon_seconds),
            min_runs=settings.scheduler_min_runs,
            publish=self._announce_runs,
            # Each schedule topped up every half horizon, many per pass.
            refill=timedelta(seconds=settings.scheduler_horizon_seconds / 2),
        )
        fallback = settings.services_fallback_seconds
        self.late_runs = LateRuns(
            self.db,
            after=timedelta(seconds=settings.late_runs_after_seconds),
            publish=self.pipeline.publish,
            fallback=fallback,
            # Marked within 2 s of the threshold (the reference looks every 5 s).
            window=timedelta(seconds=2),
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
        # Background task runs: the queue wakes this process's task-worker
        # subscriptions; other processes hear of enqueued runs on the bus.
        self.task_queue = TaskQueue(
            self.db,
            announce=lambda notice: self.bus.publish("task-queue", notice, local=False),
            lease_seconds=settings.task_run_lease_seconds,
            recheck_seconds=settings.task_run_recheck_seconds,
        )
        # Lapsed claims requeued in passes at most a second apart, not one by one.
        self.task_redelivery = TaskRedelivery(
            self.db, self.task_queue, fallback=fallback, window=timedelta(seconds=1)
        )
        self.task_queue.on_lease = self.task_redelivery.wake_if_sooner
        self.bus.subscribe("task-queue", self.task_queue.on_notice)
        # Concurrency slots: requests held for a slot wake on "concurrency-slots",
        # published wherever slots are freed; lapsed leases are freed by lease-expiry.
        self.slot_waiters = SlotWaiters(lambda: self.bus.publish("concurrency-slots", {}))
        self.bus.subscribe("concurrency-slots", lambda _notice: self.slot_waiters.wake())
        self.lease_expiry = LeaseExpiry(
            self.db, released=self.slot_waiters.released, fallback=fallback
        )
        self.bus.subscribe("concurrency-leases", self._lease_notice)
        # The one place a singleton service is registered (name -> loop).
        self.singletons: dict[str, ServiceLoop] = {
            "scheduler": self.scheduler.loop,
            "late-runs": self.late_runs.loop,
            "pause-expirations": self.pause_expirations.loop,
            "cancellation-cleanup": self.cancellation_cleanup.loop,
            "retention": self.retention.loop,
            "task-redelivery": self.task_redelivery.loop,
            "lease-expiry": self.lease_expiry.loop,
        }
        # The Celery monitor exists only with a broker (kombu is imported only then).
        self.celery_monitor: CeleryMonitor | None = None
        if settings.celery_broker_url:
            from headrace.celery_monitor.service import CeleryMonitor

            # Each committed batch is announced on "celery" (the dashboard's live
            # pages, here and in API processes on the same Postgres database).
            self.celery_monitor = CeleryMonitor(
                self.db, settings, on_commit=lambda notice: self.bus.publish("celery", notice)
            )
            self.singletons["celery-monitor"] = self.celery_monitor.run
        chosen = list(self.singletons) if services is None else list(services)
        unconfigured = sorted((set(chosen) & set(SERVICES)) - set(self.singletons))
        if unconfigured:
            raise ConfigError(
                f"service(s) {', '.join(unconfigured)} not configured here"
                " (celery-monitor needs HEADRACE_CELERY_BROKER_URL)"
            )
        unknown = sorted(set(chosen) - set(self.singletons))
        if unknown:
            raise ConfigError(
                f"unknown service(s) {', '.join(unknown)}; known: {', '.join(self.singletons)}"
            )
        self.supervisor = Supervisor()
        self.supervisor.add("event-pipeline", self.pipeline.run)
        if api and self.bus.crosses_processes:
            self.supervisor.add("event-relay", self.relay.run)
            self.bus.subscribe("events", self.relay.offer)
        self.leases: LeaseKeeper | None = None
        if chosen:
            for name in chosen:
                self.supervisor.add(name, self.singletons[name], autostart=False)
            self.leases = LeaseKeeper(
                self.db,
                self.supervisor,
                chosen,
                duration=timedelta(seconds=settings.service_lease_seconds),
                on_release=lambda: self.bus.publish("leases", {}, local=False),
            )
            self.supervisor.add("leases", self.leases.loop)
            self.bus.subscribe("leases", lambda _notice: self._wake_leases())
        self.bus.subscribe("deployments", lambda _notice: self.scheduler.wake())
        self.bus.subscribe("flow-runs", self._flow_runs_notice)

    def _flow_run_services(self) -> tuple[LateRuns, PauseExpirations, CancellationCleanup]:
        return (self.late_runs, self.pause_expirations, self.cancellation_cleanup)

    def _wake_leases(self) -> None:
        if self.leases is not None:
            self.leases.wake()

    def deployments_changed(self) -> None:
        """Called by the API after a deployment or schedule write commits."""
        self.bus.publish("deployments", {})

    def flow_runs_changed(self, state: WireDict | None = None) -> None:
        """Called after a flow-run write commits; ``state`` is the state the run entered.

        Each flow-run service wakes only when the change can make something due
        sooner than the moment it sleeps until (``None``: unknown change, all wake).
        """
        self.bus.publish("flow-runs", _state_notice(state))

    def _flow_runs_notice(self, notice: WireDict | None) -> None:
        state = None if notice is None else notice.get("state")
        for service in self._flow_run_services():
            service.notice(state)
        self.lease_expiry.notice(state)  # a deployment run may have taken a lease
        if self.slot_waiters.waiting and (state is None or state.get("type") in _SLOT_FREEING):
            # A deployment run that ended (or went back to waiting) freed its slot.
            self.slot_waiters.wake()

    def concurrency_lease_made(self, expires: datetime) -> None:
        """A concurrency lease was made: the expiry service, wherever it runs, may wake sooner."""
        self.bus.publish("concurrency-leases", {"expires": expires.isoformat()})

    def _lease_notice(self, notice: WireDict | None) -> None:
        expires = None if notice is None else notice.get("expires")
        if expires is None:
            self.lease_expiry.wake()
        else:
            self.lease_expiry.wake_if_sooner(datetime.fromisoformat(expires))

    def _events_committed(self, events: list[WireDict]) -> None:
        """Tell the other processes' relays which events were just stored."""
        if not self.bus.crosses_processes:
            return
        ids = [e["id"] for e in events]
        for start in range(0, len(ids), _EVENT_IDS_PER_NOTICE):
            self.bus.publish(
                "events", {"ids": ids[start : start + _EVENT_IDS_PER_NOTICE]}, local=False
            )

    async def _announce_runs(self, runs: list[WireDict]) -> None:
        """Publish the ``prefect.flow-run.Scheduled`` events of runs the scheduler made."""
        # One notice for the batch: the services look again and find the earliest.
        self.flow_runs_changed(None)
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
        await self.bus.start()
        self.supervisor.start()

    async def stop(self) -> None:
        """Stop every part independently: one failing stop does not skip the others."""
        deadline = self.settings.shutdown_timeout
        steps = (
            ("flush event queue", lambda: self.pipeline.drain(deadline)),
            ("stop services", lambda: self.supervisor.stop(deadline)),
            ("close bus", self.bus.stop),
            ("close database", self.db.dispose),
        )
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), deadline + 1)
            except Exception:
                logger.exception("shutdown step %r failed", name)
