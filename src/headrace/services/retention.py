"""Retention: trims events and logs past their retention period, in bounded chunks."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from headrace.settings import Settings
from headrace.storage import events, logs
from headrace.storage.db import Database

logger = logging.getLogger(__name__)

# Retention is not latency-sensitive; once an hour keeps the idle cost near zero.
INTERVAL_SECONDS = 3600.0


class Retention:
    """Deletes old events (with their resource rows) and old logs.

    Each chunk is its own short transaction, so a large backlog never holds the
    writer for long.
    """

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.last_run: datetime | None = None
        self.deleted_events = 0
        self.deleted_logs = 0

    async def run_once(self, now: datetime | None = None) -> tuple[int, int]:
        now = now or datetime.now(UTC)
        event_cutoff = now - timedelta(days=self.settings.events_retention_days)
        log_cutoff = now - timedelta(days=self.settings.logs_retention_days)
        chunk = self.settings.retention_chunk
        removed_events = removed_logs = 0
        while True:
            async with self.db.write() as conn:
                n = await events.trim_events(conn, event_cutoff, chunk)
            removed_events += n
            if n < chunk:
                break
            await asyncio.sleep(0)  # let other writers in between chunks
        while True:
            async with self.db.write() as conn:
                n = await logs.trim_logs(conn, log_cutoff, chunk)
            removed_logs += n
            if n < chunk:
                break
            await asyncio.sleep(0)
        self.last_run = now
        self.deleted_events += removed_events
        self.deleted_logs += removed_logs
        if removed_events or removed_logs:
            logger.info("retention removed %d events and %d logs", removed_events, removed_logs)
        return removed_events, removed_logs

    async def loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(INTERVAL_SECONDS)
