"""Requests waiting for a concurrency slot, and the notice that wakes them.

A request for slots that do not fit is held open for a while (``api/concurrency.py``)
instead of being answered 423 at once: it waits here until something frees slots,
until decay or a lease expiry makes room, or until the hold ends. Whatever frees
slots calls `SlotWaiters.released`; in a server that announcement goes on the bus,
so requests held in other processes wake too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class SlotWaiters:
    """Wakes every held request when slots may have been freed.

    Args:
        announce: Called by `released`; by default it wakes this process's
            waiters. A server passes a bus publish whose local delivery calls
            `wake`.
    """

    def __init__(self, announce: Callable[[], None] | None = None) -> None:
        self._announce = announce or self.wake
        self._generation = asyncio.Event()
        self.waiting = 0

    def released(self) -> None:
        """Slots were freed (a release, an expiry, a limit raised or deleted)."""
        self._announce()

    def wake(self) -> None:
        """Wake every request waiting now (each then tries again)."""
        self._generation.set()
        self._generation = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """Wait for the next wake-up, at most ``timeout`` seconds.

        Returns:
            True when woken, False when the time ran out.
        """
        if timeout <= 0:
            return False
        event = self._generation
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
                return True
            return False
        finally:
            self.waiting -= 1
