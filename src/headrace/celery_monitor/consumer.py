"""Read Celery events from the broker in a thread; hand batches to the event loop.

kombu is blocking, so one thread owns the broker connection: it drains
messages, decodes them into batches and hands each batch to the asyncio side,
which commits it. At most ``capacity`` batches are between the two at any time;
when they are all taken the thread waits (backpressure) and reads nothing.

The two transports differ, and the design follows them:

* **AMQP**: events go to a named queue that outlives a disconnect. Messages are
  consumed with a bounded prefetch and acknowledged (``multiple``) only once the
  batch holding them is committed, so when headrace is slow the broker holds
  the backlog, and after a crash the unacknowledged messages come again (the
  fold ignores duplicates). A reconnect that finds the queue gone (it expired,
  or the broker restarted) is a gap.
* **Redis**: events are pub/sub, delivered only to a connected subscriber;
  Redis drops a subscriber that falls behind (``client-output-buffer-limit
  pubsub``). So the thread reads promptly into the bounded queue, and every
  reconnect after the first is a gap: what was published meanwhile is gone.
  Gaps are logged once each and counted, never silent.

Reconnects wait ``backoff_delay``: exponential, with jitter, capped.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from headrace.celery_monitor.normalize import CeleryEvent, parse_body

logger = logging.getLogger(__name__)

BATCH_EVENTS = 1000  # most events handed over at once
FLUSH_SECONDS = 0.05  # how long a partial batch waits for company
IDLE_WAIT_SECONDS = 1.0  # longest wait for a message when nothing is pending (Redis)
# Heartbeats alone wait longer for company: 50 workers each beating every 2 s
# would otherwise cost ~20 commits a second, and a worker's online status
# (Celery's 2 x freq window, from the monitor's receipt time) does not need it sooner.
HEARTBEAT_FLUSH_SECONDS = 1.0
ENABLE_EVENTS_SECONDS = 5.0  # Flower's default ``events_enable_interval``
CONNECT_TIMEOUT = 5.0
FIRST_BACKOFF = 1.0
# The AMQP event queue: deleted by the broker after a day without a consumer,
# and never longer than this many messages (the oldest go first).
QUEUE_EXPIRES_SECONDS = 24 * 3600
QUEUE_MAX_MESSAGES = 1_000_000
_AMQP_PREFETCH_MAX = 65535  # prefetch_count is a 16-bit field


def backoff_delay(attempt: int, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (1, 2, ...).

    Doubles from one second up to ``cap``; the wait is drawn from the upper half
    of that ("equal jitter"), so many monitors restarting together spread out
    while each still waits at least half the nominal time.
    """
    nominal = min(cap, FIRST_BACKOFF * 2.0 ** min(attempt - 1, 30))
    return nominal / 2 + rng() * nominal / 2


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("amqp", "amqps", "pyamqp")


@dataclass
class Batch:
    """Events handed from the consumer thread to the asyncio side.

    Attributes:
        events: the decoded events, in arrival order.
        malformed: message items that were not events.
        unknown: events of groups other than task/worker (skipped).
        messages: broker messages the batch came from.
        ack_tag: AMQP delivery tag to acknowledge (with ``multiple``) once committed.
        generation: the connection the tag belongs to (tags restart per connection).
        heartbeats_only: nothing but worker heartbeats yet (they may wait longer).
    """

    events: list[CeleryEvent] = field(default_factory=list)
    malformed: int = 0
    unknown: int = 0
    messages: int = 0
    ack_tag: int | None = None
    generation: int = 0
    started: float = field(default_factory=time.monotonic)
    heartbeats_only: bool = True

    def due(self, now: float) -> bool:
        """Whether to hand the batch over now: full, or it has waited long enough."""
        wait = HEARTBEAT_FLUSH_SECONDS if self.heartbeats_only else FLUSH_SECONDS
        return len(self.events) >= BATCH_EVENTS or now - self.started >= wait


@dataclass
class ConsumerStats:
    """What the thread reports (plain attributes; read from the event loop)."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    gaps: int = 0
    backoff_seconds: float = 0.0
    last_error: str | None = None
    messages: int = 0
    events: int = 0
    malformed: int = 0
    unknown: int = 0


class BrokerConsumer:
    """The thread that reads the broker.

    Args:
        url: the broker URL (``redis://`` or ``amqp://``).
        deliver: called from the thread with each batch, once a slot is free;
            it must hand the batch to the event loop without blocking.
        capacity: batches that may be handed over and not yet committed.
        max_field_bytes: longest text field kept whole.
        queue_name: the AMQP event queue (Redis uses a private one per connection).
        prefetch: AMQP messages in flight before the broker waits for acks.
        reconnect_cap: longest wait between reconnect attempts (seconds).
        enable_events: broadcast ``enable_events`` to the workers periodically.
    """

    def __init__(
        self,
        url: str,
        deliver: Callable[[Batch | None], object],
        capacity: int,
        max_field_bytes: int,
        queue_name: str,
        prefetch: int,
        reconnect_cap: float,
        enable_events: bool,
    ) -> None:
        self.url = url
        self.amqp = is_amqp(url)
        self._deliver = deliver
        self._slots = threading.Semaphore(capacity)
        self.max_field_bytes = max_field_bytes
        self.queue_name = queue_name
        self.prefetch = max(1, min(prefetch, _AMQP_PREFETCH_MAX))
        self.reconnect_cap = reconnect_cap
        self.enable_events = enable_events
        self.stats = ConsumerStats()
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._pending = Batch()
        self._generation = 0
        self._sent_final = False
        self._app: Any = None
        self._thread = threading.Thread(target=self._run, name="celery-consumer", daemon=True)

    # -- called from the event loop ------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def committed(self, batch: Batch) -> None:
        """``batch`` is in the database: free its slot and acknowledge its messages."""
        if batch.ack_tag is not None:
            self._acks.put((batch.generation, batch.ack_tag))
        self._slots.release()

    def stop(self) -> None:
        """Stop reading; the thread hands over its partial batch, then ``None``."""
        self._stopping.set()

    def finish(self) -> None:
        """Every batch is committed: the thread sends the last acks and disconnects."""
        self._finished.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            connects = self.stats.connects
            try:
                self._consume(subscribed_before=connects > 0)
                break  # stopping
            except Exception as exc:  # kombu raises many kinds; all mean "reconnect"
                self.stats.connected = False
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                # What was read before the failure is kept (AMQP: it will come again,
                # unacknowledged; the fold ignores the duplicates).
                self._hand_over()
                attempt = 1 if self.stats.connects > connects else attempt + 1
                delay = backoff_delay(attempt, self.reconnect_cap)
                self.stats.backoff_seconds = delay
                logger.warning(
                    "celery broker %s: %s; reconnecting in %.1fs",
                    _safe_url(self.url),
                    self.stats.last_error,
                    delay,
                )
                if self._stopping.wait(delay):
                    break
        self.stats.connected = False
        if not self._sent_final:  # stopped while disconnected
            self._hand_over(final=True)

    def _consume(self, subscribed_before: bool) -> None:
        from celery import Celery
        from celery.events.event import get_exchange
        from kombu import Connection, Consumer, Queue

        with Connection(self.url, connect_timeout=CONNECT_TIMEOUT) as conn:
            # One try: the backoff between attempts is ours (kombu's own waits 2 s more).
            conn.ensure_connection(max_retries=0)
            channel = conn.channel()
            exchange = get_exchange(conn)
            if self.amqp:
                existed = _queue_exists(conn, self.queue_name)
                if subscribed_before and not existed:
                    self._gap("the AMQP event queue was gone (expired or broker restarted)")
                queue_ = Queue(
                    self.queue_name,
                    exchange=exchange,
                    routing_key="#",
                    durable=False,
                    auto_delete=False,
                    expires=QUEUE_EXPIRES_SECONDS,
                    max_length=QUEUE_MAX_MESSAGES,
                )
            else:
                if subscribed_before:
                    self._gap("Redis pub/sub delivers nothing to a disconnected subscriber")
                queue_ = Queue(
                    f"celeryev.headrace.{uuid.uuid4().hex}",
                    exchange=exchange,
                    routing_key="#",
                    durable=False,
                    auto_delete=True,
                )
            self._generation += 1
            self._pending = Batch(generation=self._generation)
            consumer = Consumer(
                channel,
                queues=[queue_],
                on_message=self._on_message,  # the body is decoded there (see ``decode_body``)
                on_decode_error=self._on_decode_error,
                no_ack=not self.amqp,
                accept=["json"],
                prefetch_count=self.prefetch if self.amqp else None,
            )
            if self._app is None:
                self._app = Celery(broker=self.url, set_as_current=False)
            app = self._app
            with consumer:
                # kombu's Redis transport subscribes on the first drain: only then
                # is the monitor listening (and may ask workers for a heartbeat).
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=FLUSH_SECONDS)
                self.stats.connected = True
                self.stats.connects += 1
                if self.stats.connects > 1:
                    self.stats.reconnects += 1
                self.stats.backoff_seconds = 0.0
                logger.info("celery monitor consuming events from %s", _safe_url(self.url))
                # Ask every worker for a heartbeat now, so they show up at once.
                app.control.broadcast("heartbeat", connection=conn, channel=channel)
                self._drain(conn, channel, app)

    def _drain(self, conn: Any, channel: Any, app: Any) -> None:
        next_enable = 0.0
        while not self._stopping.is_set():
            self._send_acks(channel)
            now = time.monotonic()
            if self.enable_events and now >= next_enable:
                app.control.enable_events(connection=conn)
                next_enable = now + ENABLE_EVENTS_SECONDS
            # Wake often only when something waits for it: a partial batch, or
            # (AMQP) acks of committed batches; an idle Redis monitor sleeps longer.
            busy = self.amqp or self._pending.messages
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=FLUSH_SECONDS if busy else IDLE_WAIT_SECONDS)
            pending = self._pending
            if pending.messages and pending.due(time.monotonic()):
                self._hand_over()
        self._hand_over(final=True)
        # Acknowledge the last batches as they are committed, until the loop is done.
        while not self._finished.wait(timeout=FLUSH_SECONDS):
            self._send_acks(channel)
        self._send_acks(channel)

    def _send_acks(self, channel: Any) -> None:
        newest: int | None = None
        while True:
            try:
                generation, tag = self._acks.get_nowait()
            except queue.Empty:
                break
            if generation == self._generation:  # older tags died with their channel
                newest = tag if newest is None else max(newest, tag)
        if newest is not None:
            channel.basic_ack(delivery_tag=newest, multiple=True)

    def _hand_over(self, final: bool = False) -> None:
        """Give the partial batch to the event loop, waiting for a free slot.

        ``final``: then hand over ``None``, the end of the stream. Waiting only
        ends early when the event loop has given up (``finish`` while stopping).
        """
        batch = self._pending
        if batch.messages:
            while not self._slots.acquire(timeout=0.5):
                if self._finished.is_set():
                    logger.error("celery monitor: %d events not committed", len(batch.events))
                    break
            else:
                self._deliver(batch)
            self._pending = Batch(generation=self._generation)
        if final:
            self._sent_final = True
            self._deliver(None)

    def _on_message(self, message: Any) -> None:
        try:
            body = decode_body(message)
        except Exception as exc:  # what kombu's own decoding refuses, or broken JSON
            self._on_decode_error(message, exc)
            return
        parsed = parse_body(body, time.time(), self.max_field_bytes)
        self._add(message, parsed.events, parsed.malformed, parsed.unknown)

    def _on_decode_error(self, message: Any, exc: Exception) -> None:
        logger.warning("celery monitor: undecodable event message skipped: %s", exc)
        self._add(message, [], 1, 0)

    def _add(self, message: Any, events: list[CeleryEvent], malformed: int, unknown: int) -> None:
        batch = self._pending
        batch.events.extend(events)
        if batch.heartbeats_only and (
            malformed
            or unknown
            or any(e.subject != "heartbeat" or e.group != "worker" for e in events)
        ):
            batch.heartbeats_only = False
        batch.malformed += malformed
        batch.unknown += unknown
        if not batch.messages:
            batch.started = time.monotonic()
        batch.messages += 1
        if self.amqp:
            batch.ack_tag = message.delivery_tag
        stats = self.stats
        stats.messages += 1
        stats.events += len(events)
        stats.malformed += malformed
        stats.unknown += unknown
        if len(batch.events) >= BATCH_EVENTS:
            # Full: hand it over now, not when kombu's read returns. One read may
            # hold thousands of messages, and the queue bound counts batches.
            self._hand_over()

    def _gap(self, why: str) -> None:
        self.stats.gaps += 1
        logger.error(
            "celery monitor: events published while disconnected from %s are lost (%s); gap #%d",
            _safe_url(self.url),
            why,
            self.stats.gaps,
        )


def decode_body(message: Any) -> Any:
    """A kombu message's body: plain JSON through orjson, anything else through kombu.

    kombu's decoding (serializer registry, ``object_hook``) cost a fifth of the
    consumer thread's time in a flood; Celery's events are plain JSON. What
    orjson refuses (``NaN``, which Python's json writes) and every other content
    type or a compressed body take kombu's path, with its ``accept`` check.
    """
    if message.content_type == "application/json" and not (message.headers or {}).get(
        "compression"
    ):
        try:
            return orjson.loads(message.body)
        except orjson.JSONDecodeError:
            pass
    return message.decode()


def _queue_exists(conn: Any, name: str) -> bool:
    """Whether the broker still has queue ``name`` (a passive declare)."""
    channel = conn.channel()
    try:
        channel.queue_declare(queue=name, passive=True)
        return True
    except conn.channel_errors:
        return False
    finally:
        with contextlib.suppress(Exception):  # the failed declare may have closed it
            channel.close()


def _safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
