"""Relays events stored by other processes to this process's ``/events/out`` subscribers.

With several processes on one Postgres database, an event may be stored by
another process (a services process marking a run Late, another API replica
receiving a client's events). That process sends the ids of what it committed on
the bus; the relay reads those events back and broadcasts them here, in order of
arrival. The queue of pending id batches is bounded; when it is full the oldest
batch is dropped and counted (subscribers can re-read with ``/events/filter``).
"""

from __future__ import annotations

import asyncio
import logging

from headrace.events.stream import Broadcaster
from headrace.storage import events as event_store
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

QUEUE_SIZE = 1000


class EventRelay:
    def __init__(self, db: Database, broadcaster: Broadcaster) -> None:
        self.db = db
        self.broadcaster = broadcaster
        self.queue: asyncio.Queue[list[str]] = asyncio.Queue(QUEUE_SIZE)
        self.relayed = 0
        self.dropped_batches = 0

    def offer(self, notice: WireDict | None) -> None:
        """A bus notice: ``{"ids": [...]}`` of events another process committed."""
        if notice is None or not notice.get("ids"):
            return
        if self.broadcaster.subscriber_count == 0:
            return  # nobody here to tell
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped_batches += 1
            logger.warning(
                "event relay behind; dropped a batch of ids (%d so far)", self.dropped_batches
            )
        self.queue.put_nowait([str(i) for i in notice["ids"]])

    async def run(self) -> None:
        while True:
            ids = await self.queue.get()
            try:
                async with self.db.read() as conn:
                    events = await event_store.events_by_id(conn, ids)
            except Exception:
                logger.exception("event relay could not read %d events", len(ids))
                continue
            self.relayed += len(events)
            self.broadcaster.publish(events)
