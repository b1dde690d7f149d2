"""The event WebSockets end to end: durable checkpoints, dedupe, live + backfill, paging."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from tests.acceptance import eventsock as es
from tests.conftest import RunningServer, make_server


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    with es.database(request.param) as database_url:
        running = make_server(tmp_path_factory.mktemp("event-sockets"), database_url)
        running.start()
        yield running
        if running.process and running.process.poll() is None:
            running.stop()


async def _receive_until(
    out: ClientConnection, sentinel_id: str, limit: int = 1000
) -> list[dict[str, Any]]:
    """Events from ``out`` up to and including the one with ``sentinel_id``."""
    received = []
    for _ in range(limit):
        event = await es.recv_event(out)
        received.append(event)
        if event["id"] == sentinel_id:
            return received
    raise AssertionError(f"sentinel {sentinel_id} never arrived")


async def test_checkpoints_are_durable_and_resends_are_deduplicated(
    server: RunningServer,
) -> None:
    name = es.unique_name("bulk")
    events = [es.make_event(name, i) for i in range(2000)]
    flt = es.name_filter([name])
    api = server.api_url
    async with es.http() as client:
        async with es.events_in(server) as ws:
            for start in range(0, len(events), 500):
                await es.send_events(ws, events[start : start + 500])
                await es.checkpoint(ws)
                # The pong means durable: all of it is readable right now.
                assert await es.count_events(client, api, flt) >= start + 500
            assert await es.count_events(client, api, flt) == len(events)

            # The same events again on the same socket (a client resending).
            await es.send_events(ws, events[:700])
            await es.checkpoint(ws)
        assert await es.count_events(client, api, flt) == len(events)

        # ... and after a reconnect, everything unconfirmed (here: all) once more.
        async with es.events_in(server) as ws:
            await es.send_events(ws, events)
            await es.checkpoint(ws)
        assert await es.count_events(client, api, flt) == len(events)

        stored = await es.read_all_events(client, api, flt, limit=1000)
        assert len(stored) == len(events)
        assert {e["id"] for e in stored} == {e["id"] for e in events}
        by_id = {e["id"]: e for e in stored}
        sample = events[1234]
        got = by_id[sample["id"]]
        assert got["event"] == name
        assert got["resource"] == sample["resource"]
        assert got["related"] == sample["related"]
        assert got["payload"] == {"index": 1234}
        assert got["received"]


async def test_events_out_backfills_then_streams_live(server: RunningServer) -> None:
    name = es.unique_name("stream")
    other = es.unique_name("other")
    stale = es.make_event(name, -1, occurred=es.iso(es.now() - timedelta(minutes=5)))
    early = [es.make_event(name, i) for i in range(5)]
    async with es.events_in(server) as ws:
        await es.send_events(ws, [stale, *early, es.make_event(other, 0)])
        await es.checkpoint(ws)

        since = es.now() - timedelta(minutes=1)
        async with es.events_out(server, es.name_filter([name], since=since)) as out:
            backfilled = [await es.recv_event(out) for _ in early]
            assert [e["id"] for e in backfilled] == [e["id"] for e in early]
            assert all(e["received"] for e in backfilled)

            live = []
            for i in range(5, 15):
                live.append(es.make_event(name, i))
                await es.send_events(ws, [live[-1], es.make_event(other, i)])
            await es.checkpoint(ws)
            sentinel = es.make_event(name, 99)
            await es.send_events(ws, [es.make_event(other, 99), sentinel])
            await es.checkpoint(ws)

            streamed = await _receive_until(out, sentinel["id"])
            ids = [e["id"] for e in streamed]
            # Nothing twice, nothing from the other name, nothing older than `since`,
            # no backfilled event again.
            assert len(ids) == len(set(ids))
            assert sorted(ids) == sorted([e["id"] for e in live] + [sentinel["id"]])
            assert {e["event"] for e in streamed} == {name}
            assert streamed[-1]["payload"] == {"index": 99}


async def test_events_out_backfill_catches_events_committed_just_before(
    server: RunningServer,
) -> None:
    """A reconnecting subscriber asks for ``since`` in the past and gets what it missed."""
    name = es.unique_name("reconnect")
    missed = [es.make_event(name, i) for i in range(300)]  # more than one backfill page
    async with es.events_in(server) as ws:
        await es.send_events(ws, missed)
        await es.checkpoint(ws)
        flt = es.name_filter([name], since=es.now() - timedelta(minutes=2))
        async with es.events_out(server, flt) as out:
            got = [await es.recv_event(out) for _ in missed]
            assert sorted(e["id"] for e in got) == sorted(e["id"] for e in missed)
            sentinel = es.make_event(name, 999)
            await es.send_events(ws, [sentinel])
            await es.checkpoint(ws)
            assert [e["id"] for e in await _receive_until(out, sentinel["id"])] == [sentinel["id"]]


@pytest.mark.parametrize("order", ["DESC", "ASC"])
async def test_events_filter_paging(server: RunningServer, order: str) -> None:
    name = es.unique_name("paging")
    events = [es.make_event(name, i) for i in range(25)]
    async with es.events_in(server) as ws:
        await es.send_events(ws, events)
        await es.checkpoint(ws)

    flt = {**es.name_filter([name]), "order": order}
    async with es.http() as client:
        response = await client.post(
            f"{server.api_url}/events/filter", json={"filter": flt, "limit": 10}
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages = [page]
        while page["next_page"]:
            assert page["next_page"].startswith(f"{server.api_url}/events/filter/next"), page
            assert len(pages) < 10, "next_page never ends"
            response = await client.get(page["next_page"])
            assert response.status_code == 200, response.text
            page = response.json()
            pages.append(page)

    assert [len(p["events"]) for p in pages] == [10, 10, 5]
    assert all(p["total"] == 25 for p in pages)
    ids = [e["id"] for p in pages for e in p["events"]]
    assert len(ids) == len(set(ids)), "an event appeared on two pages"
    assert set(ids) == {e["id"] for e in events}
    occurred = [e["occurred"] for p in pages for e in p["events"]]
    assert occurred == sorted(occurred, reverse=order == "DESC")


async def test_flow_run_state_events_on_events_out(server: RunningServer) -> None:
    flt = {
        "occurred": {
            "since": es.iso(es.now() - timedelta(minutes=1)),
            "until": es.iso(es.now() + timedelta(days=365)),
        },
        "event": {"prefix": ["prefect.flow-run."]},
    }
    async with es.events_out(server, flt) as out, es.http(server.api_url + "/") as client:
        flow = await client.post("flows/", json={"name": "event-sockets-flow"})
        assert flow.status_code in (200, 201), flow.text
        created = await client.post(
            "flow_runs/",
            json={"flow_id": flow.json()["id"], "state": {"type": "PENDING", "name": "Pending"}},
        )
        assert created.status_code == 201, created.text
        run = created.json()
        answer = await client.post(
            f"flow_runs/{run['id']}/set_state",
            json={"state": {"type": "RUNNING", "name": "Running"}, "force": False},
        )
        assert answer.status_code in (200, 201), answer.text
        assert answer.json()["status"] == "ACCEPT"

        resource_id = f"prefect.flow-run.{run['id']}"
        mine: dict[str, dict[str, Any]] = {}
        while set(mine) != {"prefect.flow-run.Pending", "prefect.flow-run.Running"}:
            event = await es.recv_event(out)
            if event["resource"]["prefect.resource.id"] == resource_id:
                assert event["event"] not in mine, f"{event['event']} delivered twice"
                mine[event["event"]] = event

        pending, running = mine["prefect.flow-run.Pending"], mine["prefect.flow-run.Running"]
        assert pending["resource"]["prefect.state-type"] == "PENDING"
        assert running["resource"]["prefect.state-type"] == "RUNNING"
        assert running["resource"]["prefect.state-name"] == "Running"
        assert running["resource"]["prefect.resource.name"] == run["name"]
        assert running["resource"]["prefect.run-count"] == "1"
        assert running["payload"]["validated_state"]["type"] == "RUNNING"
        assert running["payload"]["intended"] == {"from": "PENDING", "to": "RUNNING"}
        assert {
            "prefect.resource.id": f"prefect.flow.{flow.json()['id']}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": "event-sockets-flow",
        } in running["related"]
        assert pending["occurred"] <= running["occurred"]

        # Both are stored too.
        stored = await es.read_all_events(
            client, server.api_url, {**flt, "resource": {"id": [resource_id]}}
        )
        assert sorted(e["event"] for e in stored) == sorted(mine)
        assert {e["id"] for e in stored} == {e["id"] for e in mine.values()}


async def test_events_out_without_matches_stays_open(server: RunningServer) -> None:
    """A subscriber with nothing to receive is not closed on; it still gets the next match."""
    name = es.unique_name("quiet")
    async with es.events_out(server, es.name_filter([name])) as out:
        with pytest.raises(TimeoutError):
            await es.recv_event(out, timeout=0.5)
        event = es.make_event(name, 0)
        async with es.events_in(server) as ws:
            await es.send_events(ws, [event])
            await es.checkpoint(ws)
        assert (await es.recv_event(out))["id"] == event["id"]
    await asyncio.sleep(0)
