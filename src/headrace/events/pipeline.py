"""Bounded ingestion with group commit.

Producers ``await put(...)``: when the queue is full they wait, which stops the
WebSocket handler from reading, which pauses the socket — TCP backpressure instead
of drops. One consumer drains the queue in batches (flushed when full or
``flush_ms`` after the first item), writes events, event resources and the task-run
recorder's rows in one short transaction, then confirms each producer's sequence
number (so a WebSocket pong can mean "durable") and publishes to live subscribers.
A failed write is retried with backoff; nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from headrace.errors import Unavailable
from headrace.events import recorder
from headrace.events.stream import Broadcaster
from headrace.settings import Settings
from headrace.storage import events as event_store
from headrace.storage import task_runs
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

Confirm = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Item:
    event: WireDict | None  # None marks a message that was rejected but must still be confirmed
    confirm: Confirm | None = None
    seq: int = 0


class Pipeline:
    """The single path by which events reach storage and subscribers.

    Args:
        db: where events are written.
        settings: queue bound, batch size, flush delay.
        broadcaster: live subscribers (``/events/out``) fed after each commit.
        committed: also told of each commit's new events (to tell other processes).
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        broadcaster: Broadcaster,
        committed: Callable[[list[WireDict]], None] | None = None,
    ) -> None:
        self.db = db
        self.broadcaster = broadcaster
        self.committed = committed
        self.batch_size = settings.events_batch_size
        self.flush_seconds = settings.events_flush_ms / 1000
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=settings.events_queue_size)
        self.received = 0
        self.persisted = 0
        self.duplicates = 0
        self.rejected = 0
        self.batches = 0
        self.write_failures = 0
        self.last_flush_seconds = 0.0
        self._pending = 0  # queued or being written
        self._drained = asyncio.Event()
        self._drained.set()

    async def put(
        self, event: WireDict | None, confirm: Confirm | None = None, seq: int = 0
    ) -> None:
        """Queue one event (waits while the queue is full)."""
        if event is None:
            self.rejected += 1
        else:
            self.received += 1
        self._pending += 1
        self._drained.clear()
        await self.queue.put(Item(event, confirm, seq))

    async def publish(self, events: list[WireDict]) -> None:
        """Queue server-made events (e.g. flow-run state changes) after their commit."""
        for event in events:
            await self.put(event)

    async def run(self) -> None:
        """Consume forever: batch, commit, confirm, broadcast."""
        while True:
            batch = await self._next_batch()
            await self._flush(batch)

    async def _next_batch(self) -> list[Item]:
        batch = [await self.queue.get()]
        deadline = time.monotonic() + self.flush_seconds
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _flush(self, batch: list[Item]) -> None:
        unique: dict[str, WireDict] = {}
        for item in batch:
            if item.event is not None:
                unique.setdefault(item.event["id"], item.event)
        events = list(unique.values())
        started = time.monotonic()
        inserted = await self._write(events)
        self.last_flush_seconds = time.monotonic() - started
        self.batches += 1
        self.persisted += len(inserted)
        self.duplicates += len(events) - len(inserted)
        self._confirm(batch)
        self._pending -= len(batch)
        if self._pending == 0:
            self._drained.set()
        if inserted:
            fresh = [e for e in events if e["id"] in inserted]
            self.broadcaster.publish(fresh)
            if self.committed is not None:
                self.committed(fresh)

    async def _write(self, events: list[WireDict]) -> set[str]:
        """Commit ``events``; returns the ids that were new.

        A transient failure (database unavailable) is retried with backoff for as
        long as it lasts: the queue fills and producers are paused meanwhile. Any
        other failure means some event in the batch cannot be stored; the batch is
        then written one event per transaction so the rest still commit, and each
        event that fails on its own is logged and counted as rejected.
        """
        delay = 0.05
        while events:
            try:
                return await self._commit(events)
            except Unavailable:
                self.write_failures += 1
                logger.warning("database unavailable; retrying a batch of %d events", len(events))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                self.write_failures += 1
                if len(events) == 1:
                    self.rejected += 1
                    logger.exception("event %s cannot be stored; rejected", events[0]["id"])
                    return set()
                logger.warning("a batch of %d events failed; writing them one by one", len(events))
                inserted: set[str] = set()
                for event in events:
                    inserted |= await self._write([event])
                return inserted
        return set()

    async def _commit(self, events: list[WireDict]) -> set[str]:
        async with self.db.write() as conn:
            inserted = await event_store.insert_events(conn, events)
            fresh = [e for e in events if e["id"] in inserted]
            await task_runs.record(conn, recorder.fold(fresh), datetime.now(UTC))
        return inserted

    @staticmethod
    def _confirm(batch: list[Item]) -> None:
        highest: dict[Confirm, int] = {}
        for item in batch:
            if item.confirm is not None:
                highest[item.confirm] = max(highest.get(item.confirm, 0), item.seq)
        for confirm, seq in highest.items():
            confirm(seq)

    async def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far is committed; False on timeout."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except TimeoutError:
            logger.warning("event queue not drained in %.1fs (%d left)", timeout, self._pending)
            return False

    @property
    def depth(self) -> int:
        """Events accepted but not yet committed."""
        return self._pending
