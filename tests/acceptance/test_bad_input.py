"""Bad input gets a clear 4xx (JSON with a ``detail``) or a close code, never a crash.

After every case the server still answers ``GET /api/health``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.acceptance import eventsock as es
from tests.conftest import RunningServer, make_server

PENDING = {"type": "PENDING", "name": "Pending"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per backend for the whole module (each case leaves it healthy)."""
    with es.database(request.param) as database_url:
        running = make_server(tmp_path_factory.mktemp("bad-input"), database_url)
        running.start()
        yield running
        if running.process and running.process.poll() is None:
            running.stop()


async def _assert_healthy(server: RunningServer) -> None:
    # A fresh connection: after a 500 the server may drop the pooled one.
    async with es.http() as http:
        health = await http.get(f"{server.api_url}/health")
    assert health.status_code == 200, server.log()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with es.http(server.api_url + "/") as http:
        yield http
    await _assert_healthy(server)


async def _flow_run(client: httpx.AsyncClient) -> dict[str, Any]:
    flow = await client.post("flows/", json={"name": "bad-input-flow"})
    assert flow.status_code in (200, 201), flow.text
    run = await client.post("flow_runs/", json={"flow_id": flow.json()["id"], "state": PENDING})
    assert run.status_code == 201, run.text
    return run.json()  # type: ignore[no-any-return]


# --- HTTP -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["flows/", "flow_runs/", "flow_runs/filter", "logs/", "task_runs/", "events/filter"],
)
async def test_malformed_json_body(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(
        path, content=b'{"name": "x", ', headers={"content-type": "application/json"}
    )
    es.assert_error(response, 422)


async def test_wrong_types(client: httpx.AsyncClient) -> None:
    es.assert_error(await client.post("flow_runs/", json={"flow_id": "not-a-uuid"}), 422)
    es.assert_error(await client.post("flow_runs/", json={}), 422)
    es.assert_error(await client.post("flows/", json={"name": 12, "tags": "a"}), 422)
    es.assert_error(await client.post("flows/", json=["a list"]), 422)
    es.assert_error(await client.post("logs/", json={"not": "a list"}), 422)
    es.assert_error(
        await client.post(
            "logs/",
            json=[{"name": "x", "level": "loud", "message": "m", "timestamp": "yesterday"}],
        ),
        422,
    )
    es.assert_error(await client.post("flow_runs/filter", json={"limit": -1}), 422)
    es.assert_error(await client.post("flow_runs/filter", json={"limit": "ten"}), 422)
    es.assert_error(await client.post("events/filter", json={"limit": 10_000}), 422)

    run = await _flow_run(client)
    lower = {"state": {"type": "running", "name": "Running"}}
    es.assert_error(await client.post(f"flow_runs/{run['id']}/set_state", json=lower), 422)
    es.assert_error(await client.post(f"flow_runs/{run['id']}/set_state", json={}), 422)
    es.assert_error(
        await client.post(
            "flow_runs/", json={"flow_id": run["flow_id"], "state": {"type": "running"}}
        ),
        422,
    )
    # Nothing changed: the run is still Pending.
    again = await client.get(f"flow_runs/{run['id']}")
    assert again.status_code == 200
    assert again.json()["state_type"] == "PENDING"


@pytest.mark.parametrize("collection", ["flow_runs", "task_runs", "flows", "flow_run_states"])
async def test_unknown_ids(client: httpx.AsyncClient, collection: str) -> None:
    detail = es.assert_error(await client.get(f"{collection}/{uuid.uuid4()}"), 404)
    assert isinstance(detail, str)
    es.assert_error(await client.get(f"{collection}/not-a-uuid"), 422)


async def test_unknown_ids_in_mutations(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    running = {"state": {"type": "RUNNING", "name": "Running"}}
    es.assert_error(await client.post(f"flow_runs/{missing}/set_state", json=running), 404)
    es.assert_error(await client.post(f"task_runs/{missing}/set_state", json=running), 404)
    es.assert_error(await client.post("flow_runs/not-a-uuid/set_state", json=running), 422)
    es.assert_error(await client.patch(f"flow_runs/{missing}", json={"name": "x"}), 404)
    es.assert_error(await client.delete(f"flow_runs/{missing}"), 404)
    es.assert_error(await client.delete(f"task_runs/{missing}"), 404)
    es.assert_error(
        await client.post("flow_runs/", json={"flow_id": str(missing), "state": PENDING}), 404
    )


@pytest.mark.parametrize(
    "path", ["flows/filter", "flow_runs/filter", "task_runs/filter", "logs/filter"]
)
async def test_unknown_sort(client: httpx.AsyncClient, path: str) -> None:
    es.assert_error(await client.post(path, json={"sort": "SIDEWAYS_DESC"}), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("flow_runs/filter", {"flow_runs": {"id": {"most_of_": [str(uuid.uuid4())]}}}),
        ("flow_runs/filter", {"flow_runs": {"operator": "xor_", "name": {"any_": ["a"]}}}),
        ("flow_runs/filter", {"flow_runs": {"id": {"any_": ["not-a-uuid"]}}}),
        ("flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": "RUNNING"}}}}),
        ("flows/filter", {"flows": {"name": {"sounds_like_": "x"}}}),
        ("task_runs/filter", {"task_runs": {"start_time": {"before_": "not a date"}}}),
        ("logs/filter", {"logs": {"level": {"ge_": "high"}}}),
        ("flow_runs/count", {"flow_runs": {"tags": {"some_": ["a"]}}}),
        ("events/filter", {"filter": {"occurred": {"since": "not a date"}}}),
    ],
)
async def test_unknown_filter_operator_or_value(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    es.assert_error(await client.post(path, json=body), 422)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("flow_runs/filter", {"limit": 2**63}),
        ("logs/filter", {"offset": 10**20}),
    ],
)
async def test_huge_limit_or_offset(
    server: RunningServer, client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code in (200, 422), (response.status_code, response.text)
    if response.status_code == 422:
        es.assert_error(response, 422)
    await _assert_healthy(server)


async def test_nul_characters_over_http(server: RunningServer, client: httpx.AsyncClient) -> None:
    """NUL is valid JSON (\\u0000) but not storable everywhere: accept it or 422, never 500."""
    run = await _flow_run(client)
    nul = "a\u0000b"
    requests: list[tuple[str, Any]] = [
        ("flows/", {"name": f"nul-{nul}"}),
        ("flow_runs/", {"flow_id": run["flow_id"], "parameters": {"x": nul}}),
        (
            "logs/",
            [{"name": "nul", "level": 20, "message": nul, "timestamp": es.iso(es.now())}],
        ),
        ("flow_runs/filter", {"flow_runs": {"name": {"any_": [nul]}}}),
        ("events/filter", {"filter": {"event": {"name": [nul]}}}),
        (f"flow_runs/{run['id']}/set_state", {"state": {"type": "RUNNING", "message": nul}}),
    ]
    failures = []
    for path, body in requests:
        # A fresh connection per request, so one failure does not mask the next.
        async with es.http(server.api_url + "/") as http:
            response = await http.post(path, json=body)
        ok = response.status_code < 300 or (
            response.status_code == 422 and "detail" in response.json()
        )
        if not ok:
            failures.append((path, response.status_code, response.text[:200]))
    assert not failures, failures
    await _assert_healthy(server)


async def test_bad_next_page_token(client: httpx.AsyncClient) -> None:
    response = await client.get("events/filter/next", params={"page-token": "garbage!!"})
    assert 400 <= response.status_code < 500
    es.assert_error(response, response.status_code)


async def test_body_over_limit(tmp_path: Path) -> None:
    limited = make_server(tmp_path, HEADRACE_MAX_BODY_BYTES="10000")
    await asyncio.to_thread(limited.start)
    try:
        async with es.http(limited.api_url + "/") as http:
            log = {
                "name": "big",
                "level": 20,
                "message": "x" * 200,
                "timestamp": es.iso(es.now()),
                "flow_run_id": None,
            }
            small = await http.post("logs/", json=[log])
            assert small.status_code == 201, small.text

            big = [log] * 100  # about 30 kB
            detail = es.assert_error(await http.post("logs/", json=big), 413)
            assert "10000" in detail

            # Same body without a Content-Length (chunked transfer encoding).
            payload = json.dumps(big).encode()

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(payload), 4096):
                    yield payload[start : start + 4096]

            chunked = await http.post(
                "logs/", content=chunks(), headers={"content-type": "application/json"}
            )
            assert "content-length" not in chunked.request.headers
            es.assert_error(chunked, 413)

            assert (await http.get("health")).status_code == 200
            after = await http.post("logs/", json=[log])
            assert after.status_code == 201, after.text
    finally:
        await asyncio.to_thread(limited.stop)


# --- WebSockets ---------------------------------------------------------------------------


async def _closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), es.TIMEOUT)
    assert ws.close_code is not None
    return ws.close_code, ws.close_reason


@pytest.mark.parametrize("path", ["/events/in", "/events/out"])
@pytest.mark.parametrize(
    "first",
    [
        json.dumps({"type": "filter", "filter": {}}),
        json.dumps({"token": None}),
        json.dumps(["auth"]),
        "auth",
        "",
    ],
)
async def test_first_message_not_auth(
    server: RunningServer, client: httpx.AsyncClient, path: str, first: str
) -> None:
    async with connect(es.ws_url(server, path), subprotocols=es.PREFECT) as ws:
        await ws.send(first)
        assert await _closed(ws) == (1008, "Expected 'auth' message")


@pytest.mark.parametrize(
    "second",
    [
        json.dumps({"type": "auth", "token": None}),
        json.dumps({"filter": {}}),
        json.dumps(["filter"]),
        json.dumps("filter"),
    ],
)
async def test_events_out_first_message_not_filter(
    server: RunningServer, client: httpx.AsyncClient, second: str
) -> None:
    async with connect(es.ws_url(server, "/events/out"), subprotocols=es.PREFECT) as ws:
        await es.auth(ws)
        await ws.send(second)
        assert await _closed(ws) == (1002, "Expected 'filter' message")


@pytest.mark.parametrize(
    "message",
    [
        "{not json",
        json.dumps({"type": "filter", "filter": {"occurred": {"since": "last tuesday"}}}),
        json.dumps({"type": "filter", "filter": {"event": {"name": "not-a-list"}}}),
        json.dumps({"type": "filter", "filter": {"id": {"id": ["not-a-uuid"]}}}),
        json.dumps({"type": "filter", "filter": {"order": "SIDEWAYS"}}),
        json.dumps({"type": "filter", "filter": "everything"}),
    ],
)
async def test_events_out_invalid_filter(
    server: RunningServer, client: httpx.AsyncClient, message: str
) -> None:
    async with connect(es.ws_url(server, "/events/out"), subprotocols=es.PREFECT) as ws:
        await es.auth(ws)
        await ws.send(message)
        code, reason = await _closed(ws)
        assert code == 1002
        assert reason and reason.startswith(("Invalid filter", "Expected 'filter' message"))
        assert len(reason.encode()) <= 123


async def test_events_in_garbage_interleaved(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    name = es.unique_name("garbage")
    valid = [es.make_event(name, i) for i in range(12)]
    bad_id = es.make_event(name, 100)
    bad_id["id"] = "not-a-uuid"
    bad_time = es.make_event(name, 101)
    bad_time["occurred"] = "the day before yesterday"
    no_resource_id = es.make_event(name, 102)
    no_resource_id["resource"] = {"prefect.resource.name": "anonymous"}
    bad_related = es.make_event(name, 103)
    bad_related["related"] = {"prefect.resource.id": "x"}
    bad_payload = es.make_event(name, 104)
    bad_payload["payload"] = [1, 2]
    garbage: list[str | bytes] = [
        "this is not json",
        "{",
        "[1, 2, 3]",
        "42",
        "null",
        '"a string"',
        b"\x00\xff\xfe binary garbage",
        json.dumps({}),
        json.dumps({"event": name}),
        json.dumps({"id": str(uuid.uuid4()), "resource": {"prefect.resource.id": "r"}}),
        json.dumps(
            {"id": str(uuid.uuid4()), "event": "", "resource": {"prefect.resource.id": "r"}}
        ),
        json.dumps({"id": str(uuid.uuid4()), "event": name}),
        json.dumps(bad_id),
        json.dumps(bad_time),
        json.dumps(no_resource_id),
        json.dumps(bad_related),
        json.dumps(bad_payload),
        json.dumps({"type": "auth", "token": None}),
    ]
    async with es.events_in(server) as ws:
        for index, event in enumerate(valid):
            await ws.send(json.dumps(event))
            for frame in garbage[index :: len(valid)]:
                await ws.send(frame)
        await es.checkpoint(ws)
        stored = await es.read_all_events(client, server.api_url, es.name_filter([name]))
        assert sorted(e["id"] for e in stored) == sorted(e["id"] for e in valid)
        for event in stored:
            assert event["payload"]["index"] < len(valid)

        # The socket is still open and still ingesting.
        late = es.make_event(name, 50)
        await ws.send(json.dumps(late))
        await es.checkpoint(ws)
    stored = await es.read_all_events(client, server.api_url, es.name_filter([name]))
    assert len(stored) == len(valid) + 1


async def test_events_in_oversized_frame(server: RunningServer, client: httpx.AsyncClient) -> None:
    name = es.unique_name("oversized")
    huge = es.make_event(name, 0, payload={"blob": "x" * (1024 * 1024 + 10)})
    async with es.events_in(server) as ws:
        before = es.make_event(name, 1)
        await ws.send(json.dumps(before))
        await es.checkpoint(ws)
        await ws.send(json.dumps(huge))
        code, reason = await _closed(ws)
        assert code == 1009
        assert reason, "the close frame should say what was too large"

    # Nothing of the oversized event was stored, and a new connection works.
    async with es.events_in(server) as ws:
        after = es.make_event(name, 2)
        await ws.send(json.dumps(after))
        await es.checkpoint(ws)
    stored = await es.read_all_events(client, server.api_url, es.name_filter([name]))
    assert sorted(e["id"] for e in stored) == sorted([before["id"], after["id"]])


@pytest.fixture(params=["sqlite", "postgres"])
def own_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A server of its own, for a case that may leave ingestion broken for everyone after."""
    with es.database(request.param) as database_url:
        running = make_server(tmp_path, database_url, HEADRACE_SHUTDOWN_TIMEOUT="2")
        running.start()
        yield running
        if running.process and running.process.poll() is None:
            running.stop()


async def test_events_in_nul_characters(own_server: RunningServer) -> None:
    """An event with a NUL in a string is stored or dropped; it must not stall ingestion."""
    name = es.unique_name("nul")
    first = es.make_event(name, 0)
    nul_payload = es.make_event(name, 1, payload={"text": "a\u0000b"})
    nul_label = es.make_event(name, 2)
    nul_label["resource"]["prefect.resource.name"] = "thing\u0000"
    last = es.make_event(name, 3)
    async with es.events_in(own_server) as ws:
        await es.send_events(ws, [first, nul_payload, nul_label, last])
        await es.checkpoint(ws, timeout=5)  # four events: 5 s is plenty
    async with es.http() as http:
        stored = {
            e["id"]
            for e in await es.read_all_events(http, own_server.api_url, es.name_filter([name]))
        }
        assert {first["id"], last["id"]} <= stored

        # Later events from anyone still get in.
        async with es.events_in(own_server) as ws:
            later = es.make_event(name, 4)
            await es.send_events(ws, [later])
            await es.checkpoint(ws)
        assert (
            await es.count_events(http, own_server.api_url, es.name_filter([name]))
            == len(stored) + 1
        )
    await _assert_healthy(own_server)
