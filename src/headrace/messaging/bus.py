"""The in-process bus: topics, handlers, and the meaning of a ``None`` notice.

A notice is a small JSON object (what changed). Handlers run synchronously in the
publisher's task and must only record or wake something. A handler called with
``None`` learns that something on its topic may have changed without knowing
what (notices may have been missed, e.g. while a cross-process link was down);
it should look again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from headrace.types import WireDict

logger = logging.getLogger(__name__)

Handler = Callable[[WireDict | None], None]


class Bus:
    """Publish/subscribe within one process (the default, and the base of the others)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self.published = 0
        self.received = 0

    @property
    def crosses_processes(self) -> bool:
        return False

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def publish(self, topic: str, payload: WireDict, local: bool = True) -> None:
        """Tell every handler of ``topic`` (``local=False``: only other processes')."""
        self.published += 1
        if local:
            self.dispatch(topic, payload)

    def dispatch(self, topic: str, payload: WireDict | None) -> None:
        for handler in self._handlers.get(topic, ()):
            try:
                handler(payload)
            except Exception:
                logger.exception("handler of %r failed", topic)

    def dispatch_all_unknown(self) -> None:
        """Tell every handler that it may have missed notices."""
        for topic in list(self._handlers):
            self.dispatch(topic, None)

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def stop(self) -> None:
        """Nothing to close in-process."""
