"""Singleton services run where their lease is held, and move when it lapses.

Every process that may run a singleton service (the scheduler, late runs, ...)
keeps a ``LeaseKeeper``. The keeper claims the leases of the services it was
asked to run in one short transaction, launches the services whose lease it now
holds and halts any whose lease another process took. It renews a third of the
way through the lease, and a process waiting for a lease looks again the moment
the holder's lease would lapse. A holder killed with SIGKILL is thus replaced
within one lease duration; one stopped cleanly releases its leases (and says so
on the bus), so another process takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from headrace.services.supervisor import Supervisor
from headrace.storage import service_leases
from headrace.storage.db import Database

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_PAD_SECONDS = 0.05


def holder_name() -> str:
    """``host:pid:random``: unique per process, readable in ``services ls``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def next_check(
    now: datetime, duration: timedelta, held: bool, foreign_expiries: list[datetime]
) -> float:
    """Seconds until the keeper should claim again.

    Held leases are renewed a third of the way through; a lease held elsewhere is
    looked at again just after it would lapse.
    """
    delays = [duration.total_seconds() / 3]
    if not held:
        delays = [duration.total_seconds()]
    delays += [(e - now).total_seconds() + _PAD_SECONDS for e in foreign_expiries]
    return max(_PAD_SECONDS, min(delays))


class LeaseKeeper:
    """Claims the leases of ``names`` and runs, under ``supervisor``, the ones it holds.

    Args:
        db: storage.
        supervisor: where the services are registered (with ``autostart=False``).
        names: the singleton services this process may run.
        duration: lease length.
        holder: this process's name.
        on_release: called after this process released leases (to tell others).
    """

    name = "leases"

    def __init__(
        self,
        db: Database,
        supervisor: Supervisor,
        names: list[str],
        duration: timedelta,
        holder: str | None = None,
        on_release: Callable[[], None] | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.supervisor = supervisor
        self.names = names
        self.duration = duration
        self.holder = holder or holder_name()
        self.on_release = on_release
        self.clock = clock
        self.held: set[str] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Another process released a lease: claim now."""
        self._wake.set()

    async def claim_once(self) -> float:
        """Claim, launch and halt; return seconds until the next claim."""
        now = self.clock()
        if self.held == set(self.names):
            # Holding every lease (one process, or the survivor): one statement renews all.
            async with self.db.write() as conn:
                renewed = await service_leases.renew_all(
                    conn, self.names, self.holder, now, self.duration
                )
            if renewed:
                return next_check(now, self.duration, True, [])
        async with self.db.write() as conn:
            leases = await service_leases.claim(conn, self.names, self.holder, now, self.duration)
        mine = {lease.name for lease in leases if lease.holder == self.holder}
        for name in sorted(mine - self.held):
            logger.info("lease on service %s taken by %s", name, self.holder)
            self.supervisor.launch(name)
        for name in sorted(self.held - mine):
            logger.warning("lease on service %s lost; stopping it here", name)
            await self.supervisor.halt(name)
        self.held = mine
        foreign = [lease.expires for lease in leases if lease.holder != self.holder]
        return next_check(now, self.duration, bool(mine), foreign)

    async def loop(self) -> None:
        try:
            while True:
                self._wake.clear()
                try:
                    delay = await self.claim_once()
                except Exception:
                    logger.exception("claiming service leases failed; retrying")
                    delay = await self._after_failed_claim()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            await asyncio.shield(self._release())

    async def _after_failed_claim(self) -> float:
        """Could not reach the database: keep running only while the leases surely hold."""
        if self.held:
            # Renewals happen at a third of the lease, so the lease still holds for
            # at least two thirds from the last success; stop well before that.
            for name in sorted(self.held):
                logger.warning("cannot renew the lease on %s; stopping it here", name)
                await self.supervisor.halt(name)
            self.held = set()
        return min(5.0, self.duration.total_seconds() / 3)

    async def _release(self) -> None:
        held, self.held = self.held, set()
        for name in sorted(held):
            await self.supervisor.halt(name)
        if not held:
            return
        try:
            async with self.db.write() as conn:
                await service_leases.release(conn, held, self.holder)
        except Exception:
            logger.exception("releasing service leases failed; they lapse on their own")
            return
        logger.info("released the leases on %s", ", ".join(sorted(held)))
        if self.on_release is not None:
            self.on_release()
