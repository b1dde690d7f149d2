"""The dashboard's live feed: bus notices fanned out to browsers as Server-Sent Events.

The Celery monitor announces each committed batch on the bus topic ``celery``
(``{"tasks": bool, "workers": bool}``). Each open page holds one stream; what a
stream has yet to say is a set of kinds (``tasks``, ``workers``), never a queue,
so a flood of notices costs each browser at most one ``changed`` event per
interval and no memory. The page then fetches its current view again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from headrace.types import WireDict

KINDS = ("tasks", "workers")
INTERVAL_SECONDS = 0.5  # at most one event per stream this often
KEEPALIVE_SECONDS = 15.0  # a comment line now and then finds dead connections
MAX_STREAMS = 100
RETRY_MILLISECONDS = 2000  # how soon EventSource reconnects after a drop


def kinds_of(notice: WireDict | None) -> set[str]:
    """The kinds a bus notice changed (``None``, "something may have", is all of them)."""
    if notice is None:
        return set(KINDS)
    return {kind for kind in KINDS if notice.get(kind)}


class Pending:
    """What one stream has yet to send, and when it may next send (no I/O).

    Args:
        interval: the least time between two sends.
    """

    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        self.interval = interval
        self.kinds: set[str] = set()
        self._last_sent = float("-inf")

    def add(self, kinds: set[str]) -> None:
        self.kinds |= kinds

    def delay(self, now: float) -> float | None:
        """Seconds until the pending kinds may be sent (None: nothing pending)."""
        if not self.kinds:
            return None
        return max(0.0, self._last_sent + self.interval - now)

    def take(self, now: float) -> set[str]:
        """The pending kinds, now sent."""
        kinds, self.kinds = self.kinds, set()
        self._last_sent = now
        return kinds


class _Stream:
    def __init__(self, interval: float) -> None:
        self.pending = Pending(interval)
        self.wake = asyncio.Event()


def _event(kinds: set[str]) -> str:
    data = orjson.dumps({kind: kind in kinds for kind in KINDS}).decode()
    return f"event: changed\ndata: {data}\n\n"


class Feed:
    """Every open stream of this process, fed by the bus.

    Args:
        interval: the least time between two events on one stream.
        keepalive: the longest silence on a stream.
        max_streams: streams open at once; more are refused.
    """

    def __init__(
        self,
        interval: float = INTERVAL_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self.interval = interval
        self.keepalive = keepalive
        self.max_streams = max_streams
        self.closed = False
        self._streams: set[_Stream] = set()

    @property
    def full(self) -> bool:
        return len(self._streams) >= self.max_streams

    def notice(self, notice: WireDict | None) -> None:
        """The bus handler: mark the kinds changed on every stream."""
        kinds = kinds_of(notice)
        if not kinds:
            return
        for stream in self._streams:
            stream.pending.add(kinds)
            stream.wake.set()

    def close(self) -> None:
        """End every stream (the server is stopping: uvicorn waits for open responses)."""
        self.closed = True
        for stream in self._streams:
            stream.wake.set()

    async def stream(self) -> AsyncIterator[str]:
        """One browser's event stream, until it disconnects or the feed closes."""
        loop = asyncio.get_running_loop()
        stream = _Stream(self.interval)
        self._streams.add(stream)
        try:
            yield f"retry: {RETRY_MILLISECONDS}\n\n"
            while not self.closed:
                delay = stream.pending.delay(loop.time())
                if delay is None:
                    # No await since ``delay`` was read: a notice cannot slip in unseen.
                    stream.wake.clear()
                    try:
                        await asyncio.wait_for(stream.wake.wait(), self.keepalive)
                    except TimeoutError:
                        yield ": keepalive\n\n"
                elif delay > 0:
                    await asyncio.sleep(delay)  # notices meanwhile only add kinds
                else:
                    yield _event(stream.pending.take(loop.time()))
        finally:
            self._streams.discard(stream)
