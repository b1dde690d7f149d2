"""What the flow-run services share: sleep until the next thing is due, or until told.

A service's ``run_once(now)`` does what is due at ``now`` and returns when the
next thing will be due (computed from the data), or None when nothing is
pending. ``loop()`` sleeps until that moment, until ``notice()`` reports a
change that could make something due sooner, or at most ``fallback`` seconds
(the safety net for changes made by another process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from headrace.events import emit
from headrace.storage.flow_runs import Transition
from headrace.types import WireDict

logger = logging.getLogger(__name__)

Publish = Callable[[list[WireDict]], Awaitable[None]]
Clock = Callable[[], datetime]

DEFAULT_FALLBACK_SECONDS = 300.0
# A pass that leaves something overdue (it could not be handled) waits this long
# before trying again rather than spinning.
RETRY_OVERDUE_SECONDS = 1.0
# Waking a hair after the due moment makes the pass see it as due.
_PAD_SECONDS = 0.005


def utc_now() -> datetime:
    return datetime.now(UTC)


def sleep_seconds(
    due: datetime | None, now: datetime, fallback: float, window: timedelta = timedelta(0)
) -> float:
    """How long to sleep before the next pass.

    Args:
        due: when the next thing becomes due (None: nothing pending).
        now: the clock.
        fallback: the longest sleep.
        window: how long after ``due`` the pass may wait, so that what becomes
            due meanwhile shares it.

    Returns:
        Seconds until ``due + window`` (plus a few ms), at most ``fallback``; a
        moment already past gives ``RETRY_OVERDUE_SECONDS``.
    """
    if due is None:
        return fallback
    delay = (due + window - now).total_seconds()
    if delay <= 0:
        return min(RETRY_OVERDUE_SECONDS, fallback)
    return min(delay + _PAD_SECONDS, fallback)


class DueService:
    """Base of a service that sleeps until its next due moment or a notice.

    Attributes:
        name: the service's name (as the supervisor knows it).
        next_due: when the last pass said the next thing is due.
        last_run: when the last pass started.
        last_lag: seconds between when the last pass was due and when it ran
            (0 when a notice woke it early).
        last_pass_seconds: how long the last pass took.
        transitions: state changes written since start.

    Args:
        publish: called with the events of the state changes a pass wrote.
        fallback: the longest sleep, in seconds.
        clock: the time source.
        window: how long a pass waits past its due moment so that what becomes
            due meanwhile shares it (services whose items come due one by one,
            e.g. 1000 minutely deployments' runs turning Late, ~17 a second).
    """

    name = "service"

    def __init__(
        self,
        publish: Publish | None = None,
        fallback: float = DEFAULT_FALLBACK_SECONDS,
        clock: Clock = utc_now,
        window: timedelta = timedelta(0),
    ) -> None:
        self.publish = publish
        self.fallback = fallback
        self.clock = clock
        self.window = window
        self._wake = asyncio.Event()
        self._in_pass = False
        self.next_due: datetime | None = None
        self.last_run: datetime | None = None
        self.last_lag = 0.0
        self.last_pass_seconds = 0.0
        self.transitions = 0

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        raise NotImplementedError

    def wake(self) -> None:
        """Look again now."""
        self._wake.set()

    def wake_if_sooner(self, due: datetime | None) -> None:
        """Wake when ``due`` comes before the moment the service sleeps until.

        During a pass every notice wakes: the pass may have read before the
        change committed.
        """
        if due is None:
            return
        if self._in_pass or self.next_due is None or due < self.next_due:
            self._wake.set()

    def notice(self, state: WireDict | None) -> None:
        """A flow run entered ``state`` (None: something changed, unknown what)."""
        self.wake()

    async def publish_transitions(self, transitions: list[Transition], now: datetime) -> None:
        """Publish the flow-run state events of committed transitions."""
        written = [tr for tr in transitions if tr.written is not None]
        self.transitions += len(written)
        if self.publish is None or not written:
            return
        await self.publish(
            [
                emit.flow_run_state_event(tr.run, tr.written, tr.previous, tr.flow_name, now)
                for tr in written
                if tr.written is not None
            ]
        )

    async def pass_once(self) -> datetime | None:
        """One pass at the current time, with its bookkeeping; never raises."""
        self._wake.clear()
        now = self.clock()
        planned = self.next_due
        self.last_lag = 0.0 if planned is None else max(0.0, (now - planned).total_seconds())
        self.last_run = now
        started = time.monotonic()
        self._in_pass = True
        try:
            due = await self.run_once(now)
        except Exception:
            logger.exception("%s pass failed; retrying in 30 s", self.name)
            due = now + timedelta(seconds=30)
        finally:
            self._in_pass = False
            self.last_pass_seconds = time.monotonic() - started
        self.next_due = due
        return due

    async def loop(self) -> None:
        while True:
            due = await self.pass_once()
            delay = sleep_seconds(due, self.clock(), self.fallback, self.window)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
