"""``/task_runs/subscriptions/scheduled`` spoken by hand, as the 3.9.1 client speaks it.

Delivery (one run in flight per subscriber, acknowledgement, requeue on a
disconnect before the ack, runs waiting for a subscriber, deletion) and bad
input (malformed subscribe messages, wrong acknowledgements: close 4001 with a
reason; the server stays healthy). On SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.acceptance import eventsock as es
from tests.conftest import RunningServer, make_server

PATH = "/task_runs/subscriptions/scheduled"
QUIET = 0.5  # how long "nothing arrives" is watched for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with es.database(request.param) as database_url:
        running = make_server(tmp_path_factory.mktemp("task-subscriptions"), database_url)
        running.start()
        yield running
        if running.process and running.process.poll() is None:
            running.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with es.http(server.api_url + "/") as http:
        yield http
        assert (await http.get("health")).status_code == 200, server.log()


@pytest.fixture
def key() -> str:
    """A task key no other test uses (the server is shared by the module)."""
    return f"double-{uuid.uuid4().hex[:8]}"


async def delay(client: httpx.AsyncClient, key: str) -> dict[str, Any]:
    """``POST /task_runs/`` exactly as ``task.delay()`` sends it."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {
        "state": {
            "type": "SCHEDULED",
            "name": "Scheduled",
            "state_details": {
                "scheduled_time": now,
                "deferred": True,
                "task_parameters_id": str(uuid.uuid4()),
            },
            "data": None,
            "message": None,
        },
        "name": "double",
        "flow_run_id": None,
        "task_key": key,
        "dynamic_key": f"{key}-{uuid.uuid4().hex}",
        "task_version": None,
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0},
        "tags": [],
        "labels": {},
        "task_inputs": {"x": []},
    }
    response = await client.post("task_runs/", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@asynccontextmanager
async def subscriber(
    server: RunningServer, keys: list[str], client_id: str = "test-1"
) -> AsyncIterator[ClientConnection]:
    async with connect(es.ws_url(server, PATH), subprotocols=es.PREFECT) as ws:
        await es.auth(ws)
        await ws.send(json.dumps({"type": "subscribe", "keys": keys, "client_id": client_id}))
        yield ws


async def receive_run(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), es.TIMEOUT))  # type: ignore[no-any-return]


async def nothing_arrives(ws: ClientConnection) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), QUIET)
    except TimeoutError:
        return True
    return False


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), es.TIMEOUT)
    return ws.close_code, ws.close_reason


ACK = json.dumps({"type": "ack"})


# -- delivery ---------------------------------------------------------------------


async def test_a_delayed_run_is_pushed_whole_and_acknowledged(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    async with subscriber(server, [key]) as ws:
        run = await delay(client, key)
        pushed = await receive_run(ws)
        await ws.send(ACK)

    assert "type" not in pushed  # no envelope: the TaskRun itself
    assert pushed["id"] == run["id"]
    assert pushed["task_key"] == key
    details = pushed["state"]["state_details"]
    assert details["deferred"] is True
    assert details["task_parameters_id"] == run["state"]["state_details"]["task_parameters_id"]
    read = await client.get(f"task_runs/{run['id']}")
    assert read.status_code == 200
    assert read.json()["state"]["type"] == "SCHEDULED"


async def test_one_run_in_flight_per_subscriber(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    first, second = await delay(client, key), await delay(client, key)
    async with subscriber(server, [key]) as ws:
        assert (await receive_run(ws))["id"] == first["id"]
        assert await nothing_arrives(ws)  # not before the ack
        await ws.send(ACK)
        assert (await receive_run(ws))["id"] == second["id"]
        await ws.send(ACK)


async def test_runs_delayed_with_no_subscriber_wait_for_one(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    runs = [await delay(client, key) for _ in range(3)]
    received = []
    async with subscriber(server, [key, f"other-{key}"]) as ws:
        for _ in runs:
            received.append((await receive_run(ws))["id"])
            await ws.send(ACK)
    assert received == [r["id"] for r in runs]


async def test_a_run_not_acknowledged_before_disconnect_goes_to_the_next_worker(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    first, second = await delay(client, key), await delay(client, key)
    async with subscriber(server, [key], "leaves-1") as ws:
        assert (await receive_run(ws))["id"] == first["id"]
    async with subscriber(server, [key], "stays-2") as ws:
        # The first run is requeued ahead of newer ones once the server has seen the
        # disconnect; a subscriber that arrives sooner gets the second run first.
        received = []
        for _ in range(2):
            received.append((await receive_run(ws))["id"])
            await ws.send(ACK)
    assert sorted(received) == sorted([first["id"], second["id"]])


async def test_a_worker_that_stops_pinging_is_closed_and_its_run_goes_to_the_next(
    tmp_path: Path,
) -> None:
    """A half-open connection (host gone, no FIN) must not keep its runs."""
    silent_server = make_server(
        tmp_path,
        HEADRACE_TASK_WORKER_SILENCE_SECONDS="1.5",
        HEADRACE_TASK_RUN_LEASE_SECONDS="2",
    )
    silent_server.start()
    try:
        key = f"silent-{uuid.uuid4().hex[:8]}"
        async with es.http(silent_server.api_url + "/") as client:
            run = await delay(client, key)
            async with connect(
                es.ws_url(silent_server, PATH), subprotocols=es.PREFECT, ping_interval=None
            ) as ws:
                await es.auth(ws)
                await ws.send(json.dumps({"type": "subscribe", "keys": [key], "client_id": "x"}))
                await ws.ping()  # pinged once, then silent: what a vanished host looks like
                assert (await receive_run(ws))["id"] == run["id"]
                await ws.send(ACK)
                code, reason = await closed(ws)
            assert code == 1011 and "no ping" in (reason or "")
            # Acknowledged but never started: it goes to the next worker once the
            # silent worker's lease lapses.
            async with subscriber(silent_server, [key], "next") as ws:
                assert (await receive_run(ws))["id"] == run["id"]
                await ws.send(ACK)
            assert (await client.get("health")).status_code == 200
    finally:
        silent_server.stop()


async def test_each_run_goes_to_one_of_two_subscribers(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    async with subscriber(server, [key], "a-1") as a, subscriber(server, [key], "b-2") as b:
        runs = [await delay(client, key) for _ in range(10)]
        got: dict[str, list[str]] = {"a": [], "b": []}

        async def drain(name: str, ws: ClientConnection) -> None:
            while sum(map(len, got.values())) < len(runs):
                try:
                    run = json.loads(await asyncio.wait_for(ws.recv(), QUIET * 2))
                except TimeoutError:
                    continue
                got[name].append(run["id"])
                await ws.send(ACK)

        await asyncio.wait_for(asyncio.gather(drain("a", a), drain("b", b)), es.TIMEOUT)
    delivered = got["a"] + got["b"]
    assert sorted(delivered) == sorted(r["id"] for r in runs)
    assert len(set(delivered)) == len(delivered)


async def test_quit_closes_normally_and_requeues_the_unacknowledged_run(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    run = await delay(client, key)
    async with subscriber(server, [key]) as ws:
        await receive_run(ws)
        await ws.send(json.dumps({"type": "quit"}))
        assert (await closed(ws))[0] == 1000
    async with subscriber(server, [key], "next-2") as ws:
        assert (await receive_run(ws))["id"] == run["id"]
        await ws.send(ACK)


async def test_a_deleted_run_is_not_delivered(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    gone, kept = await delay(client, key), await delay(client, key)
    assert (await client.delete(f"task_runs/{gone['id']}")).status_code == 204
    async with subscriber(server, [key]) as ws:
        assert (await receive_run(ws))["id"] == kept["id"]
        await ws.send(ACK)
        assert await nothing_arrives(ws)


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{not json", "Protocol violation: expected 'subscribe' message"),
        (json.dumps(["subscribe"]), "Protocol violation: expected 'subscribe' message"),
        (
            json.dumps({"type": "subscribed", "keys": ["k"], "client_id": "c"}),
            "expected 'subscribe'",
        ),
        (json.dumps({"type": "subscribe", "client_id": "c"}), "expected 'keys' in subscribe"),
        (json.dumps({"type": "subscribe", "keys": [], "client_id": "c"}), "expected 'keys'"),
        (json.dumps({"type": "subscribe", "keys": "k", "client_id": "c"}), "'keys' must be"),
        (json.dumps({"type": "subscribe", "keys": [1], "client_id": "c"}), "'keys' must be"),
        (json.dumps({"type": "subscribe", "keys": ["k"]}), "expected 'client_id' in subscribe"),
        (json.dumps({"type": "subscribe", "keys": ["k"], "client_id": ""}), "expected 'client_id'"),
        (json.dumps({"type": "subscribe", "keys": ["k"], "client_id": 7}), "'client_id' must be"),
    ],
)
async def test_malformed_subscribe_closes_4001_with_a_reason(
    server: RunningServer, client: httpx.AsyncClient, message: str, reason: str
) -> None:
    async with connect(es.ws_url(server, PATH), subprotocols=es.PREFECT) as ws:
        await es.auth(ws)
        await ws.send(message)
        code, said = await closed(ws)
    assert code == 4001
    assert said is not None and reason in said


@pytest.mark.parametrize("reply", ["{not json", json.dumps({"type": "nack"}), json.dumps([])])
async def test_a_reply_that_is_not_an_ack_closes_4001_and_requeues(
    server: RunningServer, client: httpx.AsyncClient, key: str, reply: str
) -> None:
    run = await delay(client, key)
    async with subscriber(server, [key]) as ws:
        await receive_run(ws)
        await ws.send(reply)
        assert await closed(ws) == (4001, "Protocol violation: expected 'ack' message")
    async with subscriber(server, [key], "good-2") as ws:
        assert (await receive_run(ws))["id"] == run["id"]
        await ws.send(ACK)


async def test_a_message_before_any_run_closes_4001(
    server: RunningServer, client: httpx.AsyncClient, key: str
) -> None:
    async with subscriber(server, [key]) as ws:
        await ws.send(ACK)
        code, reason = await closed(ws)
    assert code == 4001
    assert reason is not None and "unexpected message" in reason
    # The server is fine and the next subscriber gets what is delayed.
    async with subscriber(server, [key]) as ws:
        run = await delay(client, key)
        assert (await receive_run(ws))["id"] == run["id"]
        await ws.send(ACK)


async def test_first_message_not_auth_closes_1008(server: RunningServer) -> None:
    async with connect(es.ws_url(server, PATH), subprotocols=es.PREFECT) as ws:
        await ws.send(json.dumps({"type": "subscribe", "keys": ["k"], "client_id": "c"}))
        assert await closed(ws) == (1008, "Expected 'auth' message")


# -- several API processes ------------------------------------------------------------


@pytest.fixture
def two_processes(tmp_path: Path, pg_url: str) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two API processes on one Postgres database (the second runs no services)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_server(tmp_path / "a", pg_url)
    second = make_server(tmp_path / "b", pg_url)
    second.extra_args = ["--no-services"]
    first.start()
    second.start()
    yield first, second
    for running in (second, first):
        if running.process and running.process.poll() is None:
            running.stop()


@pytest.mark.postgres
async def test_a_run_delayed_on_another_process_wakes_the_subscriber_at_once(
    two_processes: tuple[RunningServer, RunningServer], key: str
) -> None:
    """The enqueue notice crosses processes (LISTEN/NOTIFY), so the subscriber gets
    the run long before its 120 s re-check of storage."""
    first, second = two_processes
    async with es.http(second.api_url + "/") as other, subscriber(first, [key]) as ws:
        assert await nothing_arrives(ws)  # subscribed and idle
        run = await delay(other, key)
        pushed = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send(ACK)
    assert pushed["id"] == run["id"]
