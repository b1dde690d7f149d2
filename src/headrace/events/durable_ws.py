"""WebSocket pongs that mean "durable", not merely "received".

The Prefect client checkpoints `/events/in` with a protocol-level ping: when the
pong arrives it forgets every event it sent before that ping. Stock uvicorn
answers a ping as soon as it parses it, so a crash between the pong and the
commit loses events the client will never resend.

`DurableAckWSProtocol` is a drop-in for uvicorn's `ws` setting
(`uvicorn.Config(app, ws=DurableAckWSProtocol)`). It puts an `AckTracker` into
every WebSocket scope; a route that calls `AckTracker.enable()` gets its pongs
held until it `confirm()`s that every message delivered before the ping is
durable. Routes that never enable it keep uvicorn's immediate pongs.

This subclasses uvicorn's wsproto protocol and overrides its event handlers, so
it depends on uvicorn internals: keep uvicorn pinned to the version the tests
run against.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

import wsproto
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol
from wsproto import events
from wsproto.connection import ConnectionState

logger = logging.getLogger(__name__)

ACK_EXTENSION = "headrace.ack"
"""Key of the `AckTracker` in `scope["extensions"]`."""

# 1013 "Try Again Later": the client reconnects and resends what is unconfirmed.
# Not 1008, which the Prefect client treats as an authentication failure.
_OVERLOAD_CLOSE_CODE = 1013


class AckTracker:
    """Holds a connection's pongs until the app confirms what it has stored.

    The app finds the tracker in `scope["extensions"]["headrace.ack"]` (see
    `ack_tracker`). Counts are in messages: the n-th `websocket.receive` event
    (text or bytes) the app takes from `receive()` on this socket is message n,
    counting from 1 and including messages the app rejects or ignores (such as
    an auth frame or malformed JSON). A pong answers a ping once the app has
    confirmed every message delivered before that ping.

    All methods must be called on the event loop that runs the server.

    Args:
        send_pong: Writes the pong for a held ping, or drops it when the
            connection can no longer send one.
    """

    def __init__(self, send_pong: Callable[[events.Ping], None]) -> None:
        self._send_pong = send_pong
        self._enabled = False
        self._delivered = 0
        self._confirmed = 0
        # (target, ping) in ping order; targets never decrease, so releasing from
        # the left keeps the pongs in the order of their pings.
        self._held: deque[tuple[int, events.Ping]] = deque()
        # When the peer last pinged (monotonic), None before its first ping. The
        # Prefect client pings every 20 s whatever the traffic, so a peer that
        # has pinged and then falls silent is gone even if TCP has not noticed.
        self.last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        """Whether pongs wait for `confirm`."""
        return self._enabled

    @property
    def delivered(self) -> int:
        """Complete messages the server has queued for the app so far."""
        return self._delivered

    @property
    def confirmed(self) -> int:
        """Highest count passed to `confirm`."""
        return self._confirmed

    @property
    def held(self) -> int:
        """Pongs currently waiting for confirmation."""
        return len(self._held)

    def enable(self) -> None:
        """Make pongs for pings received from now on wait for `confirm`.

        Messages delivered before this call still count towards the targets.
        There is no way back: once enabled, a tracker stays enabled.
        """
        self._enabled = True

    def confirm(self, count: int) -> None:
        """Declare the first `count` messages received on this socket durable.

        Sends, in ping order, every held pong whose ping followed at most `count`
        messages. A count at or below the current one is ignored, so callers
        may report progress out of order.

        Args:
            count: Number of messages, from the first, that are handled.

        Raises:
            ValueError: If `count` exceeds the messages delivered so far; that
                would answer future pings for messages nobody has stored.
        """
        if count > self._delivered:
            raise ValueError(
                f"cannot confirm {count} messages: only {self._delivered} were delivered"
            )
        if count <= self._confirmed:
            return
        self._confirmed = count
        while self._held and self._held[0][0] <= count:
            _, ping = self._held.popleft()
            self._send_pong(ping)

    # The methods below are called by DurableAckWSProtocol, not by the app.

    def message_delivered(self) -> None:
        """Record that one more complete message was queued for the app."""
        self._delivered += 1

    def must_hold(self) -> bool:
        """Whether a ping arriving now must wait for confirmation."""
        return self._enabled and self._confirmed < self._delivered

    def hold(self, ping: events.Ping) -> None:
        """Keep `ping` until everything delivered so far is confirmed."""
        self._held.append((self._delivered, ping))

    def drop_held(self) -> None:
        """Forget every held pong; the connection can no longer answer them."""
        self._held.clear()


def ack_tracker(scope: MutableMapping[str, Any]) -> AckTracker | None:
    """Return the connection's `AckTracker`, or None under another server.

    Args:
        scope: The ASGI scope of a WebSocket connection.
    """
    tracker = scope.get("extensions", {}).get(ACK_EXTENSION)
    return tracker if isinstance(tracker, AckTracker) else None


class DurableAckWSProtocol(WSProtocol):
    """uvicorn's wsproto WebSocket protocol, answering pings only when durable.

    Pass the class as `uvicorn.Config(..., ws=DurableAckWSProtocol)`. Everything
    else, including the pause of reading after each message until the app calls
    `receive()` (the TCP backpressure), is uvicorn's.
    """

    max_held_pongs = 1024
    """Held pongs beyond which the connection is closed with 1013.

    Only a peer that keeps pinging while the app confirms nothing gets there;
    closing is safe because the client resends what is unconfirmed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ack_tracker = AckTracker(self._send_held_pong)

    read_size = 16 * 1024
    """Bytes asyncio reads per socket read (its default is 256 KiB).

    Every complete message in one read is parsed in a single callback; a flood
    over several sockets would otherwise hold the event loop for tens of
    milliseconds at a time and delay every other request.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if hasattr(transport, "max_size"):
            transport.max_size = self.read_size

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.ack_tracker.drop_held()

    def handle_connect(self, event: events.Request) -> None:
        super().handle_connect(event)
        # super() has only scheduled the app task, so the app cannot have read
        # the scope yet.
        self.scope["extensions"][ACK_EXTENSION] = self.ack_tracker  # type: ignore[assignment]

    queue_high_water = 32
    """Complete messages queued for the app before reading from the socket pauses.

    uvicorn pauses after every message; pausing and resuming the transport per
    message costs two epoll calls each. Pausing at a small bound keeps the same
    backpressure (at most this many messages plus one socket read are buffered).
    """

    def handle_message(self, event: events.TextMessage | events.BytesMessage) -> None:
        was_paused = self.read_paused
        self.read_paused = True  # keeps super() from pausing after this message
        # handle_events() skips messages once close_sent is set, so close_sent
        # here afterwards means super() refused the message (too large) and did
        # not queue it.
        super().handle_message(event)
        self.read_paused = was_paused
        if event.message_finished and not self.close_sent:
            self.ack_tracker.message_delivered()
            if not self.read_paused and self.queue.qsize() >= self.queue_high_water:
                self.read_paused = True
                self.transport.pause_reading()

    def handle_ping(self, event: events.Ping) -> None:
        tracker = self.ack_tracker
        tracker.last_ping = time.monotonic()
        if not tracker.must_hold():
            super().handle_ping(event)
            return
        if tracker.held >= self.max_held_pongs:
            self._close_overloaded()
            return
        tracker.hold(event)

    def _send_held_pong(self, event: events.Ping) -> None:
        # After our close frame, or once the peer's close or a lost connection
        # moved wsproto out of OPEN, a pong can no longer be sent (wsproto would
        # raise LocalProtocolError into the app's confirm() call).
        if (
            self.close_sent
            or self.disconnected
            or self.transport.is_closing()
            or self.conn.state is not ConnectionState.OPEN
        ):
            return
        self.transport.write(self.conn.send(event.response()))

    def _close_overloaded(self) -> None:
        reason = "too many unanswered pings"
        logger.warning("Closing WebSocket %s: %s", self.scope.get("path"), reason)
        self.ack_tracker.drop_held()
        self.close_sent = True
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": _OVERLOAD_CLOSE_CODE, "reason": reason}
        )
        if not self.transport.is_closing():
            close = wsproto.events.CloseConnection(code=_OVERLOAD_CLOSE_CODE, reason=reason)
            self.transport.write(self.conn.send(close))
            self.transport.close()
