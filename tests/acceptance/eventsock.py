"""Small helpers for the acceptance tests that speak the event WebSockets and HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests import conftest
from tests.conftest import RunningServer

TIMEOUT = 15.0
"""Generous upper bound for any single wait on a socket or a poll."""

PREFECT = [Subprotocol("prefect")]
"""The subprotocol every 3.9.1 client offers."""


@contextmanager
def database(backend: str) -> Iterator[str | None]:
    """A database URL for ``make_server`` that may outlive one test (module fixtures).

    None for SQLite (the server's home holds the file); a fresh Postgres database,
    dropped afterwards, for "postgres" (skipped locally, failed in CI, when absent).
    """
    if backend == "sqlite":
        yield None
        return
    if not conftest._pg_available():
        conftest._missing("PostgreSQL on 127.0.0.1:5432")
    name = f"headrace_test_{uuid.uuid4().hex[:12]}"
    conftest._psql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        conftest._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def http(base_url: str = "") -> httpx.AsyncClient:
    """An HTTP client for the tests (plain http: skip building a TLS context each time)."""
    return httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT, verify=False)


def ws_url(server: RunningServer, path: str) -> str:
    return server.api_url.replace("http://", "ws://", 1) + path


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


def unique_name(prefix: str = "acceptance") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


def make_event(name: str, index: int = 0, **extra: Any) -> dict[str, Any]:
    """An event exactly as ``Event.model_dump(mode="json")`` would put it on the wire."""
    event: dict[str, Any] = {
        "occurred": iso(now()),
        "event": name,
        "resource": {
            "prefect.resource.id": f"acceptance.resource.{uuid.uuid4()}",
            "prefect.resource.name": f"thing-{index}",
        },
        "related": [
            {
                "prefect.resource.id": "acceptance.suite",
                "prefect.resource.role": "suite",
            }
        ],
        "payload": {"index": index},
        "id": str(uuid.uuid4()),
        "follows": None,
    }
    event.update(extra)
    return event


def name_filter(names: Iterable[str], since: datetime | None = None) -> dict[str, Any]:
    """An ``EventFilter`` for exact event names over a window around now."""
    start = since or now() - timedelta(minutes=10)
    return {
        "occurred": {"since": iso(start), "until": iso(now() + timedelta(minutes=10))},
        "event": {"name": list(names)},
        "order": "ASC",
    }


@asynccontextmanager
async def events_in(server: RunningServer) -> AsyncIterator[ClientConnection]:
    """An authenticated ``/events/in`` connection."""
    async with connect(ws_url(server, "/events/in"), subprotocols=PREFECT) as ws:
        await auth(ws)
        yield ws


@asynccontextmanager
async def events_out(server: RunningServer, flt: dict[str, Any]) -> AsyncIterator[ClientConnection]:
    """An authenticated ``/events/out`` connection that has sent its filter."""
    async with connect(ws_url(server, "/events/out"), subprotocols=PREFECT) as ws:
        await auth(ws)
        await ws.send(json.dumps({"type": "filter", "filter": flt}))
        yield ws


async def auth(ws: ClientConnection) -> None:
    assert ws.subprotocol == "prefect"
    await ws.send(json.dumps({"type": "auth", "token": None}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply == {"type": "auth_success"}


async def send_events(ws: ClientConnection, events: Iterable[dict[str, Any]]) -> None:
    for event in events:
        await ws.send(json.dumps(event))


async def checkpoint(ws: ClientConnection, timeout: float = TIMEOUT) -> None:
    """Ping and wait for the pong: everything sent before is durable."""
    waiter = await ws.ping()
    await asyncio.wait_for(waiter, timeout)


async def recv_event(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    assert message["type"] == "event", message
    return message["event"]  # type: ignore[no-any-return]


async def read_all_events(
    client: httpx.AsyncClient, api_url: str, flt: dict[str, Any], limit: int = 200
) -> list[dict[str, Any]]:
    """Every event matching ``flt``, following ``next_page`` to the end."""
    response = await client.post(f"{api_url}/events/filter", json={"filter": flt, "limit": limit})
    assert response.status_code == 200, response.text
    page = response.json()
    found = list(page["events"])
    while page["next_page"]:
        response = await client.get(page["next_page"])
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["events"])
    return found


async def count_events(client: httpx.AsyncClient, api_url: str, flt: dict[str, Any]) -> int:
    response = await client.post(f"{api_url}/events/filter", json={"filter": flt, "limit": 1})
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def wait_for_events(
    client: httpx.AsyncClient, api_url: str, flt: dict[str, Any], expected: int
) -> list[dict[str, Any]]:
    """Poll until at least ``expected`` events match (for events sent without a checkpoint)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        found = await read_all_events(client, api_url, flt)
        if len(found) >= expected or loop.time() > deadline:
            return found
        await asyncio.sleep(0.1)


def assert_error(response: httpx.Response, status: int) -> Any:
    """A ``status`` answer whose body is a JSON object with a ``detail``; returns the detail."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers,
        response.text,
    )
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    return body["detail"]
