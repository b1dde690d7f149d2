"""A bus that also reaches other processes through Postgres LISTEN/NOTIFY.

One dedicated asyncpg connection per process listens on a channel per topic and
sends this process's notices (``pg_notify``) from a bounded outbox. A notice
carries the sender's origin id, so a process ignores its own (it dispatched them
locally already). When the connection drops, notices may be missed both ways:
after reconnecting, every handler is told "something may have changed" (a
``None`` notice), and an outbox that overflowed while down is replaced by one
such notice per topic, so nothing is silently lost — only its detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson

from headrace.messaging.bus import Bus
from headrace.types import WireDict

logger = logging.getLogger(__name__)

OUTBOX_SIZE = 10_000
MAX_PAYLOAD_BYTES = 7900  # Postgres refuses NOTIFY payloads of 8000 bytes or more
_CHANNEL_PREFIX = "headrace_"


def channel(topic: str) -> str:
    return _CHANNEL_PREFIX + topic.replace("-", "_")


def asyncpg_dsn(database_url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://`` URL as a plain libpq DSN."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else database_url


class PostgresBus(Bus):
    """In-process dispatch plus LISTEN/NOTIFY between processes on one database."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.dsn = asyncpg_dsn(database_url)
        self.origin = uuid.uuid4().hex[:12]
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(OUTBOX_SIZE)
        self._overflowed: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0

    @property
    def crosses_processes(self) -> bool:
        return True

    def publish(self, topic: str, payload: WireDict, local: bool = True) -> None:
        super().publish(topic, payload, local)
        text = orjson.dumps({"o": self.origin, "p": payload}).decode()
        if len(text.encode()) > MAX_PAYLOAD_BYTES:
            logger.error(
                "notice on %r too large to send (%d bytes); sent as unknown", topic, len(text)
            )
            text = orjson.dumps({"o": self.origin, "p": None}).decode()
        try:
            self._outbox.put_nowait((topic, text))
        except asyncio.QueueFull:
            self._overflowed.add(topic)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bus")

    async def wait_connected(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def stop(self) -> None:
        if self._task is None:
            return
        # Let notices already published (e.g. "leases released" at shutdown) go out.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained(), 2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _drained(self) -> None:
        await self._outbox.join()

    async def _run(self) -> None:
        import asyncpg

        delay = 0.5
        first = True
        while True:
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "headrace-bus"}
                )
            except (OSError, asyncpg.PostgresError) as exc:
                logger.warning("bus cannot connect (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            try:
                for topic in list(self._handlers):
                    await conn.add_listener(channel(topic), self._make_listener(topic))
                self._connected.set()
                if not first:
                    self.reconnects += 1
                    logger.info("bus reconnected; telling every handler to look again")
                    self.dispatch_all_unknown()
                first = False
                await self._send_until_lost(conn, lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.warning("bus connection lost (%s); reconnecting", exc)
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2.0)

    async def _send_until_lost(self, conn: Any, lost: asyncio.Event) -> None:
        lost_wait = asyncio.ensure_future(lost.wait())
        try:
            while not lost.is_set():
                get = asyncio.ensure_future(self._outbox.get())
                done, _ = await asyncio.wait({get, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    return
                batch = [get.result()]
                while not self._outbox.empty() and len(batch) < 500:
                    batch.append(self._outbox.get_nowait())
                taken = len(batch)
                for topic in sorted(self._overflowed):
                    batch.append((topic, orjson.dumps({"o": self.origin, "p": None}).decode()))
                self._overflowed.clear()
                try:
                    await conn.executemany(
                        "SELECT pg_notify($1, $2)",
                        [(channel(topic), text) for topic, text in batch],
                    )
                except BaseException:
                    # Whether these went out is unknown: resend them as "look again".
                    self._overflowed.update(topic for topic, _ in batch)
                    raise
                finally:
                    for _ in batch[:taken]:
                        self._outbox.task_done()
        finally:
            lost_wait.cancel()

    def _make_listener(self, topic: str) -> Any:
        def on_notify(_conn: Any, _pid: int, _channel: str, text: str) -> None:
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                logger.warning("ignoring a malformed notice on %r", topic)
                return
            if message.get("o") == self.origin:
                return
            self.received += 1
            self.dispatch(topic, message.get("p"))

        return on_notify
