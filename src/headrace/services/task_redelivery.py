"""Task redelivery: background runs whose worker is gone go back to the queue.

A claim on a background task run lapses when its task worker's subscription
stopped renewing it (the worker disconnected and did not come back within the
lease). Runs that never started (still SCHEDULED or PENDING) are requeued ahead
of new runs and the waiting subscribers are woken; rows of runs that started or
were deleted are dropped. The service sleeps until the earliest lease lapses, or
until the task queue reports a lease that lapses sooner.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from headrace.services.due import DEFAULT_FALLBACK_SECONDS, Clock, DueService, utc_now
from headrace.storage import task_queue as queue_store
from headrace.storage.db import Database
from headrace.task_queue import TaskQueue

logger = logging.getLogger(__name__)

BATCH = 500  # lapsed claims handled per write transaction
MAX_BATCHES = 20  # per pass; the rest on the next (due at once)


class TaskRedelivery(DueService):
    """Requeues background runs whose claim lapsed.

    Args:
        db: storage.
        queue: the process's task queue, told about requeued runs (wire its
            ``on_lease`` to ``wake_if_sooner``).
        fallback: the longest sleep, in seconds.
        clock: the time source of ``loop``.
    """

    name = "task-redelivery"

    def __init__(
        self,
        db: Database,
        queue: TaskQueue,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
        window: timedelta = timedelta(0),
    ) -> None:
        super().__init__(None, fallback, clock, window)
        self.db = db
        self.queue = queue
        self.requeued = 0
        self.dropped = 0

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        now = now or self.clock()
        for _ in range(MAX_BATCHES):
            async with self.db.write() as conn:
                expired = await queue_store.expire(conn, now, BATCH)
            self.requeued += len(expired.requeued)
            self.dropped += expired.dropped
            if expired.requeued:
                self.queue.enqueued(expired.requeued)
            if expired.requeued or expired.dropped:
                logger.info(
                    "claims lapsed: requeued %d background task run(s), dropped %d started or deleted",
                    len(expired.requeued),
                    expired.dropped,
                )
            if not expired.more:
                break
        else:
            return now
        async with self.db.read() as conn:
            return await queue_store.next_expiry(conn)
