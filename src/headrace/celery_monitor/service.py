"""The celery-monitor service: commit the consumer's batches; trim old tasks and workers.

Runs as a singleton service (one process per database holds its lease). Its
loop takes each batch the consumer thread hands over, folds it into the stored
task and worker rows in one transaction, then frees the batch's slot and (on
AMQP) acknowledges its messages. A batch is never dropped: a database that is
unavailable is retried with a capped backoff while the consumer waits; a batch
the database refuses outright is committed one task at a time, so only the
offending task's events are skipped (logged and counted).

On stop (the task is cancelled) the consumer stops reading, the batches already
handed over are committed under the shutdown deadline, the last messages are
acknowledged, and the thread disconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from headrace.celery_monitor.consumer import BATCH_EVENTS, Batch, BrokerConsumer
from headrace.celery_monitor.fold import fold_tasks, fold_workers
from headrace.celery_monitor.metrics import MonitorMetrics
from headrace.celery_monitor.normalize import CeleryEvent
from headrace.errors import Unavailable
from headrace.settings import Settings
from headrace.storage import celery_tasks, celery_workers
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0
_RETRY_CAP_SECONDS = 10.0


def _hand_to(
    loop: asyncio.AbstractEventLoop, batches: asyncio.Queue[Batch | None], batch: Batch | None
) -> None:
    """Called from the consumer thread: queue ``batch`` on the event loop."""
    try:
        loop.call_soon_threadsafe(batches.put_nowait, batch)
    except RuntimeError:  # the loop is closed: the monitor has stopped
        logger.debug("celery monitor: batch handed over after the loop closed")


class CeleryMonitor:
    """Celery events from ``settings.celery_broker_url`` into the database.

    Attributes:
        consumer: the running consumer thread's handle (None while stopped).
        committed_batches, committed_events: what reached the database.
        skipped_events: events of tasks the database refused (see the log).
        deleted_tasks, deleted_workers: removed by retention since start.

    Args:
        db: the database the rows go to.
        settings: the frozen settings.
        on_commit: told after each committed batch what it changed
            (``{"tasks": bool, "workers": bool}``); the dashboard's live pages
            hear it on the bus.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        on_commit: Callable[[WireDict], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.on_commit = on_commit
        self.consumer: BrokerConsumer | None = None
        self.committed_batches = 0
        self.committed_events = 0
        self.skipped_events = 0
        self.deleted_tasks = 0
        self.deleted_workers = 0
        self.last_commit: float | None = None
        self.lag_seconds = 0.0
        self.metrics = MonitorMetrics()
        self._batches: asyncio.Queue[Batch | None] | None = None

    def status(self) -> dict[str, Any]:
        """The monitor's state, for health details and metrics."""
        stats = self.consumer.stats if self.consumer is not None else None
        return {
            "connected": bool(stats and stats.connected),
            "reconnects": stats.reconnects if stats else 0,
            "gaps": stats.gaps if stats else 0,
            "backoff_seconds": stats.backoff_seconds if stats else 0.0,
            "last_error": stats.last_error if stats else None,
            "messages": stats.messages if stats else 0,
            "events_received": stats.events if stats else 0,
            "malformed": stats.malformed if stats else 0,
            "unknown": stats.unknown if stats else 0,
            "events_committed": self.committed_events,
            "events_skipped": self.skipped_events,
            "queue_batches": self._batches.qsize() if self._batches is not None else 0,
            # Read from the broker and not yet committed, wherever they wait.
            "queue_events": max(0, (stats.events if stats else 0) - self.committed_events),
            "lag_seconds": self.lag_seconds,
        }

    async def run(self) -> None:
        """The service loop (the supervisor cancels it to stop)."""
        loop = asyncio.get_running_loop()
        batches: asyncio.Queue[Batch | None] = asyncio.Queue()
        self._batches = batches
        settings = self.settings
        consumer = BrokerConsumer(
            settings.celery_broker_url,
            deliver=lambda batch: _hand_to(loop, batches, batch),
            capacity=max(1, settings.celery_queue_size // BATCH_EVENTS),
            max_field_bytes=settings.celery_max_field_bytes,
            queue_name=settings.celery_event_queue,
            prefetch=settings.celery_queue_size,
            reconnect_cap=settings.celery_reconnect_max_seconds,
            enable_events=settings.celery_enable_events,
        )
        self.consumer = consumer
        consumer.start()
        retention = asyncio.create_task(self._retention_loop(), name="celery-retention")
        try:
            while True:
                batch = await batches.get()
                if batch is None:
                    break
                await self._commit(batch)
                consumer.committed(batch)
        finally:
            retention.cancel()
            consumer.stop()
            await self._drain(batches, consumer)

    async def _drain(self, batches: asyncio.Queue[Batch | None], consumer: BrokerConsumer) -> None:
        """Commit what the consumer still hands over, within the shutdown deadline."""
        # Leave a margin of the supervisor's deadline for the thread to disconnect.
        deadline = time.monotonic() + self.settings.shutdown_timeout * 0.8
        try:
            while (left := deadline - time.monotonic()) > 0:
                batch = await asyncio.wait_for(batches.get(), left)
                if batch is None:
                    break
                await asyncio.wait_for(self._commit(batch, retry=False), left)
                consumer.committed(batch)
        except (TimeoutError, Exception) as exc:
            logger.error("celery monitor: stopping without committing everything: %r", exc)
        finally:
            consumer.finish()
            await asyncio.to_thread(consumer.join, max(0.5, deadline - time.monotonic()))

    async def _commit(self, batch: Batch, retry: bool = True) -> None:
        attempt = 0
        while True:
            try:
                await self.write(batch.events)
                break
            except Unavailable as exc:
                if not retry:
                    raise
                attempt += 1
                delay = min(_RETRY_CAP_SECONDS, 0.5 * 2**attempt)
                logger.warning("celery monitor: %s; retrying the batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                logger.exception("celery monitor: batch refused; committing task by task")
                await self._write_one_by_one(batch.events)
                break
        self.committed_batches += 1
        self.committed_events += len(batch.events)
        self.last_commit = time.time()
        if batch.events:
            self.lag_seconds = max(0.0, self.last_commit - batch.events[0].local_received)
            if self.on_commit is not None:
                self.on_commit(
                    {
                        "tasks": any(e.group == "task" for e in batch.events),
                        "workers": any(e.hostname for e in batch.events),
                    }
                )

    async def write(self, events: list[CeleryEvent]) -> None:
        """Fold ``events`` into the stored rows, in one transaction."""
        if not events:
            return
        async with self.db.write() as conn:
            uuids = sorted({e.uuid for e in events if e.group == "task"})
            tasks = fold_tasks(await celery_tasks.read_tasks(conn, uuids), events)
            await celery_tasks.upsert_tasks(conn, [tasks[u] for u in sorted(tasks)])
            hosts = sorted({e.hostname for e in events if e.hostname})
            workers = fold_workers(await celery_workers.read_workers(conn, hosts), events)
            await celery_workers.upsert_workers(conn, [workers[h] for h in sorted(workers)])
        self.metrics.observe(events, tasks)

    async def _write_one_by_one(self, events: list[CeleryEvent]) -> None:
        by_key: dict[str, list[CeleryEvent]] = {}
        for event in events:
            by_key.setdefault(event.uuid or f"worker:{event.hostname}", []).append(event)
        for key, group in by_key.items():
            try:
                await self.write(group)
            except Exception as exc:
                self.skipped_events += len(group)
                logger.error("celery monitor: %d events of %s skipped: %r", len(group), key, exc)

    async def trim(self, now: float | None = None) -> tuple[int, int]:
        """Delete tasks and workers older than the retention period, in bounded chunks."""
        now = time.time() if now is None else now
        cutoff = now - self.settings.celery_retention_days * 86400
        chunk = self.settings.retention_chunk
        tasks = 0
        while True:
            async with self.db.write() as conn:
                removed = await celery_tasks.trim_tasks(conn, cutoff, chunk)
            tasks += removed
            if removed < chunk:
                break
            await asyncio.sleep(0)  # let the event commits in between chunks
        async with self.db.write() as conn:
            workers = await celery_workers.trim_workers(conn, cutoff)
        self.deleted_tasks += tasks
        self.deleted_workers += workers
        if tasks or workers:
            logger.info("celery retention removed %d tasks and %d workers", tasks, workers)
        return tasks, workers

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.trim()
            except Exception:
                logger.exception("celery retention failed; trying again in an hour")
            await asyncio.sleep(RETENTION_INTERVAL_SECONDS)
