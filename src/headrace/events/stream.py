"""Live fan-out of committed events to ``/events/out`` subscribers.

Each subscriber has a bounded queue. A subscriber that falls that far behind is
cut off (its socket closed with 1013, "try again later") instead of letting its
queue grow without limit; the client reconnects and catches up from the stored
events through the backfill its filter asks for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from headrace.types import WireDict

logger = logging.getLogger(__name__)

Matcher = Callable[[WireDict], bool]


class Subscription:
    """One live subscriber: a matcher and a bounded queue of matching events."""

    def __init__(self, matcher: Matcher, maxsize: int) -> None:
        self.matcher = matcher
        self.queue: asyncio.Queue[WireDict] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = asyncio.Event()

    def offer(self, event: WireDict) -> None:
        if self.overflowed.is_set() or not self.matcher(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()


class Broadcaster:
    """Delivers each committed event to every subscription whose filter matches."""

    def __init__(self, subscriber_queue_size: int = 10_000) -> None:
        self.subscriber_queue_size = subscriber_queue_size
        self._subscriptions: set[Subscription] = set()
        self.cut_off = 0

    def subscribe(self, matcher: Matcher) -> Subscription:
        sub = Subscription(matcher, self.subscriber_queue_size)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def publish(self, events: list[WireDict]) -> None:
        for sub in list(self._subscriptions):
            was_overflowed = sub.overflowed.is_set()
            for event in events:
                sub.offer(event)
            if sub.overflowed.is_set() and not was_overflowed:
                self.cut_off += 1
                logger.warning("an /events/out subscriber fell behind and was cut off")
