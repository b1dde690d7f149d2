"""Everything a client was told is stored survives a clean stop and a restart.

A real prefect==3.9.1 flow (three tasks, one log line) and a handful of custom
events confirmed by a ping checkpoint; then SIGTERM while an ``/events/in`` and an
``/events/out`` socket are still open (as a real client keeps them), exit code 0,
start again on the same home, and read everything back. Then the same for events
confirmed just before a SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.acceptance import eventsock as es
from tests.conftest import RunningServer, run_client

SCRIPTS = Path(__file__).parent / "scripts"

FLOW_RUN_KEYS = (
    "id",
    "name",
    "flow_id",
    "parameters",
    "state_id",
    "state_type",
    "state_name",
    "state",
    "run_count",
    "start_time",
    "end_time",
    "total_run_time",
)
TASK_RUN_KEYS = (
    "id",
    "name",
    "flow_run_id",
    "task_key",
    "dynamic_key",
    "state_id",
    "state_type",
    "state_name",
    "state",
    "run_count",
    "start_time",
    "end_time",
)


def _pick(obj: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: obj.get(k) for k in keys}


async def _task_runs(client: httpx.AsyncClient, api: str, run_id: str) -> list[dict[str, Any]]:
    response = await client.post(
        f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}
    )
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda t: t["id"])


async def _wait_for_tasks(client: httpx.AsyncClient, api: str, run_id: str, expected: int) -> None:
    """Ordinary task runs arrive as events; wait until all are recorded and final."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + es.TIMEOUT
    while True:
        tasks = await _task_runs(client, api, run_id)
        done = [t for t in tasks if t["state_type"] == "COMPLETED"]
        if len(done) >= expected:
            return
        assert loop.time() < deadline, f"task runs never completed: {tasks}"
        await asyncio.sleep(0.2)


async def _snapshot(client: httpx.AsyncClient, api: str, run_id: str, since: Any) -> dict[str, Any]:
    run = await client.get(f"{api}/flow_runs/{run_id}")
    assert run.status_code == 200, run.text
    states = await client.get(f"{api}/flow_run_states/", params={"flow_run_id": run_id})
    assert states.status_code == 200, states.text

    tasks = []
    for task in await _task_runs(client, api, run_id):
        task_states = await client.get(
            f"{api}/task_run_states/", params={"task_run_id": task["id"]}
        )
        assert task_states.status_code == 200, task_states.text
        tasks.append({"run": _pick(task, TASK_RUN_KEYS), "states": task_states.json()})

    logs = await client.post(
        f"{api}/logs/filter",
        json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"},
    )
    assert logs.status_code == 200, logs.text

    window = {
        "occurred": {
            "since": es.iso(since),
            "until": es.iso(es.now() + timedelta(minutes=10)),
        },
        "order": "ASC",
    }
    events = await es.read_all_events(client, api, window)
    by_id = {e["id"]: e for e in events}
    assert len(by_id) == len(events), "an event id was returned twice"
    return {
        "run": _pick(run.json(), FLOW_RUN_KEYS),
        "run_states": states.json(),
        "tasks": tasks,
        "logs": logs.json(),
        "events": by_id,
    }


async def _confirmed_events_survive_sigkill(server: RunningServer) -> None:
    """A pong means durable: events confirmed before a hard kill are all there afterwards."""
    name = es.unique_name("sigkill")
    events = [es.make_event(name, i) for i in range(1000)]
    async with es.events_in(server) as ws:
        for start in range(0, len(events), 500):
            await es.send_events(ws, events[start : start + 500])
            await es.checkpoint(ws)
        assert server.process is not None
        server.process.kill()  # no shutdown, no drain: only what was committed survives
        await asyncio.to_thread(server.process.wait)

    await asyncio.to_thread(server.start)
    async with es.http() as client:
        stored = await es.read_all_events(client, server.api_url, es.name_filter([name]), 1000)
    assert {e["id"] for e in stored} == {e["id"] for e in events}


async def test_data_survives_restart(any_server: RunningServer, tmp_path: Path) -> None:
    server = any_server
    api = server.api_url
    started = es.now() - timedelta(minutes=1)

    ran = await asyncio.to_thread(run_client, server, [str(SCRIPTS / "restart_flow.py")], tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:] + server.log()
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome == {
        "flow_run_id": outcome["flow_run_id"],
        "state_type": "COMPLETED",
        "result": 13,
    }
    run_id = outcome["flow_run_id"]

    name = es.unique_name("restart")
    custom = [es.make_event(name, i) for i in range(5)]

    async with es.http() as client:
        await _wait_for_tasks(client, api, run_id, 3)

        async with (
            es.events_out(server, es.name_filter([name])) as watcher,
            es.events_in(server) as ws,
        ):
            await es.send_events(ws, custom)
            await es.checkpoint(ws)  # pong: the five events are durable
            seen = [await es.recv_event(watcher) for _ in custom]
            assert sorted(e["id"] for e in seen) == sorted(e["id"] for e in custom)

            before = await _snapshot(client, api, run_id, started)

            # SIGTERM with both sockets still open, as a running client would have them.
            exit_code = await asyncio.to_thread(server.stop)
            for sock in (ws, watcher):
                await asyncio.wait_for(sock.wait_closed(), es.TIMEOUT)

        await asyncio.to_thread(server.start)
        after = await _snapshot(client, api, run_id, started)

        # The flow run, its states, the task runs and their states, the logs.
        assert after["run"] == before["run"]
        assert before["run"]["state_type"] == "COMPLETED"
        assert [s["name"] for s in after["run_states"]] == ["Pending", "Running", "Completed"]
        assert after["run_states"] == before["run_states"]
        assert len(after["tasks"]) == 3
        for task in after["tasks"]:
            assert task["run"]["state_type"] == "COMPLETED"
            assert [s["name"] for s in task["states"]] == ["Pending", "Running", "Completed"]
        assert after["tasks"] == before["tasks"]
        assert "restart flow says hello x=3" in [log["message"] for log in after["logs"]]
        assert after["logs"] == before["logs"]

        # Every event, counted by id, and unchanged.
        custom_ids = {e["id"] for e in custom}
        assert custom_ids <= set(before["events"])
        missing = set(before["events"]) - set(after["events"])
        assert not missing, f"{len(missing)} events lost in the restart"
        for event_id, event in before["events"].items():
            assert after["events"][event_id] == event
        task_events = [
            e for e in after["events"].values() if e["event"].startswith("prefect.task-run.")
        ]
        assert len(task_events) >= 9, "Pending, Running, Completed for each of three tasks"

        # A client that reconnects resends what it had not seen confirmed: no duplicates.
        async with es.events_in(server) as ws:
            await es.send_events(ws, custom)
            await es.checkpoint(ws)
        assert await es.count_events(client, api, es.name_filter([name])) == len(custom)

        health = await client.get(f"{api}/health")
        assert health.status_code == 200

    # Same server, same home (a server start costs seconds): now a hard kill.
    await _confirmed_events_survive_sigkill(server)

    # Checked last so that a bad exit code does not hide what the restart lost.
    assert exit_code == 0, f"SIGTERM exit code {exit_code}\n{server.log()}"
