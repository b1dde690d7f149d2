"""DurableAckWSProtocol under a real uvicorn server and the websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from headrace.events.durable_ws import AckTracker, DurableAckWSProtocol, ack_tracker

# Long enough for a pong that was going to be sent to reach the client on
# loopback; the held ping was already seen by the server before we wait.
NOT_YET = 0.3
DEADLINE = 5.0


@dataclass
class Route:
    """What one connection of the test app saw."""

    tracker: AckTracker | None = None
    received: list[str | bytes] = field(default_factory=list)
    finished: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class App:
    """A Starlette app whose routes record into `routes`; tests do the confirming."""

    routes: list[Route] = field(default_factory=list)

    def build(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/durable", self.durable),
                WebSocketRoute("/plain", self.plain),
            ]
        )

    async def durable(self, websocket: WebSocket) -> None:
        await self._serve(websocket, enable=True)

    async def plain(self, websocket: WebSocket) -> None:
        await self._serve(websocket, enable=False)

    async def _serve(self, websocket: WebSocket, *, enable: bool) -> None:
        route = Route(tracker=ack_tracker(websocket.scope))
        self.routes.append(route)
        try:
            await websocket.accept()
            assert route.tracker is not None
            if enable:
                route.tracker.enable()
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("text")
                route.received.append(message["bytes"] if data is None else data)
                if data == "close":
                    await websocket.close()
                    # Confirming after our close frame must not write a pong.
                    route.tracker.confirm(route.tracker.delivered)
                    return
        finally:
            route.finished.set()


class RecordingConnection(ClientConnection):
    """A websockets client connection that records pong payloads in arrival order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pongs: list[bytes] = []

    def acknowledge_pings(self, data: bytes) -> None:
        self.pongs.append(bytes(data))
        super().acknowledge_pings(data)


class TightProtocol(DurableAckWSProtocol):
    max_held_pongs = 2


@contextlib.asynccontextmanager
async def running_server(
    ws: type[DurableAckWSProtocol] = DurableAckWSProtocol,
) -> AsyncIterator[tuple[App, str]]:
    app = App()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None keeps uvicorn's loggers propagating, so caplog sees them.
    config = uvicorn.Config(app.build(), ws=ws, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started)
        yield app, f"ws://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, DEADLINE)
        sock.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[App, str]]:
    async with running_server() as running:
        yield running


@contextlib.asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[RecordingConnection]:
    # No client keepalive: its pings would be held like any other.
    async with connect(
        url, ping_interval=None, create_connection=RecordingConnection, **options
    ) as ws:
        assert isinstance(ws, RecordingConnection)
        yield ws


async def wait_until(predicate: Callable[[], bool]) -> None:
    # Polls state that nothing signals (uvicorn's `started`, the tracker's
    # counters); an Event would mean instrumenting the code under test.
    async with asyncio.timeout(DEADLINE):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def route_of(app: App, index: int = 0) -> tuple[Route, AckTracker]:
    await wait_until(lambda: len(app.routes) > index)
    route = app.routes[index]
    assert route.tracker is not None
    return route, route.tracker


async def assert_no_pong(waiter: Awaitable[float]) -> None:
    await asyncio.sleep(NOT_YET)
    assert isinstance(waiter, asyncio.Future)
    assert not waiter.done()


@pytest.fixture
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    # In teardown, caplog.records would be the teardown phase's records.
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


async def test_pong_waits_until_every_earlier_message_is_confirmed(
    server: tuple[App, str], no_server_errors: None
) -> None:
    app, url = server
    async with client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        await ws.send(b"e2")
        await ws.send("e3")
        await wait_until(lambda: len(route.received) == 3)

        waiter = await ws.ping(b"checkpoint")
        await wait_until(lambda: tracker.held == 1)
        await assert_no_pong(waiter)

        tracker.confirm(2)
        await assert_no_pong(waiter)

        tracker.confirm(3)
        await asyncio.wait_for(waiter, DEADLINE)
        assert ws.pongs == [b"checkpoint"]
        assert tracker.held == 0


async def test_ping_with_nothing_unconfirmed_is_answered_at_once(
    server: tuple[App, str],
) -> None:
    app, url = server
    async with client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        # The Prefect client pings right after connecting, before auth.
        await asyncio.wait_for(await ws.ping(b"hello"), DEADLINE)

        await ws.send("auth")
        await wait_until(lambda: len(route.received) == 1)
        tracker.confirm(1)
        await asyncio.wait_for(await ws.ping(b"caught-up"), DEADLINE)
        assert ws.pongs == [b"hello", b"caught-up"]


async def test_route_that_never_enables_gets_immediate_pongs(server: tuple[App, str]) -> None:
    app, url = server
    async with client(url + "/plain") as ws:
        route, tracker = await route_of(app)
        for n in range(5):
            await ws.send(f"e{n}")
        await asyncio.wait_for(await ws.ping(b"p"), DEADLINE)
        await wait_until(lambda: len(route.received) == 5)
        assert tracker.delivered == 5
        assert tracker.confirmed == 0
        assert tracker.held == 0


async def test_held_pongs_are_released_in_ping_order(server: tuple[App, str]) -> None:
    app, url = server
    async with client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        await ws.send("e2")
        first = await ws.ping(b"a")
        await ws.send("e3")
        await ws.send("e4")
        second = await ws.ping(b"b")
        await ws.send("e5")
        third = await ws.ping(b"c")
        await wait_until(lambda: tracker.held == 3)
        assert len(route.received) == 5

        tracker.confirm(2)
        await asyncio.wait_for(first, DEADLINE)
        await assert_no_pong(second)
        assert not third.done()

        # One confirmation covering both remaining pings sends both, in order.
        tracker.confirm(5)
        await asyncio.wait_for(third, DEADLINE)
        assert second.done()
        assert ws.pongs == [b"a", b"b", b"c"]


async def test_unfinished_fragmented_message_does_not_count(server: tuple[App, str]) -> None:
    app, url = server
    # wsproto 1.3 (stock uvicorn too) corrupts a compressed fragmented message
    # when a ping arrives between its fragments; the Prefect client never
    # fragments, so test the counting without compression.
    async with client(url + "/durable", compression=None) as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        await wait_until(lambda: len(route.received) == 1)
        tracker.confirm(1)

        first_fragment_sent = asyncio.Event()
        finish = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "frag"
            first_fragment_sent.set()
            await finish.wait()
            yield "ment"

        sending = asyncio.create_task(ws.send(fragments()))
        await first_fragment_sent.wait()
        # Control frames may interleave with fragments; the half message must
        # not be part of this ping's target.
        await asyncio.wait_for(await ws.ping(b"mid"), DEADLINE)

        finish.set()
        await sending
        await wait_until(lambda: len(route.received) == 2)
        assert route.received[1] == "fragment"
        assert tracker.delivered == 2


async def test_client_close_while_pong_is_held(
    server: tuple[App, str], no_server_errors: None
) -> None:
    app, url = server
    async with client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        await ws.send("e2")
        waiter = await ws.ping(b"held")
        await wait_until(lambda: tracker.held == 1)
    await asyncio.wait_for(route.finished.wait(), DEADLINE)
    assert tracker.held == 0
    tracker.confirm(2)
    with pytest.raises(ConnectionClosed):
        await waiter
    assert ws.pongs == []


async def test_app_close_while_pong_is_held(
    server: tuple[App, str], no_server_errors: None
) -> None:
    app, url = server
    async with client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        waiter = await ws.ping(b"held")
        await wait_until(lambda: tracker.held == 1)
        # The route closes, then confirms everything: the pong must not follow
        # the close frame.
        await ws.send("close")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1000
    await asyncio.wait_for(route.finished.wait(), DEADLINE)
    assert tracker.confirmed == 2
    with pytest.raises(ConnectionClosed):
        await waiter
    assert ws.pongs == []


async def test_too_many_held_pongs_close_the_connection(no_server_errors: None) -> None:
    async with running_server(TightProtocol) as (app, url), client(url + "/durable") as ws:
        route, tracker = await route_of(app)
        await ws.send("e1")
        for payload in (b"1", b"2", b"3"):
            await ws.ping(payload)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1013
        await asyncio.wait_for(route.finished.wait(), DEADLINE)
        assert tracker.held == 0
        assert ws.pongs == []
