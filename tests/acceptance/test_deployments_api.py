"""Work pools, queues, deployments and schedules with the real prefect==3.9.1 CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.conftest import RunningServer, run_client

SCRIPTS = Path(__file__).parent / "scripts"


def _prefect(server: RunningServer, tmp_path: Path, *args: str) -> str:
    ran = run_client(server, ["-m", "prefect", *args], tmp_path)
    assert ran.returncode == 0, (
        f"prefect {' '.join(args)}:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}"
    )
    return ran.stdout


def test_pool_deployment_and_schedule_lifecycle(any_server: RunningServer, tmp_path: Path) -> None:
    out = _prefect(any_server, tmp_path, "work-pool", "create", "--type", "process", "p1")
    assert "Created work pool 'p1'" in out
    assert "p1" in _prefect(any_server, tmp_path, "work-pool", "ls")
    assert "default" in _prefect(any_server, tmp_path, "work-queue", "ls", "--pool", "p1")
    again = run_client(
        any_server, ["-m", "prefect", "work-pool", "create", "--type", "process", "p1"], tmp_path
    )
    assert "already exists" in again.stdout + again.stderr

    applied = run_client(any_server, [str(SCRIPTS / "deploy_flow.py"), "p1"], tmp_path)
    assert applied.returncode == 0, applied.stderr[-3000:] + any_server.log()
    ids = json.loads(applied.stdout.strip().splitlines()[-1])
    assert ids["served"] == ids["again"], "a second apply updates the same deployment"

    listing = _prefect(any_server, tmp_path, "deployment", "ls")
    assert "dep-flow/pooled" in listing and "dep-flow/served" in listing
    inspect = _prefect(any_server, tmp_path, "deployment", "inspect", "dep-flow/pooled")
    assert ids["pooled"] in inspect and "'work_pool_name': 'p1'" in inspect
    assert "'work_queue_name': 'default'" in inspect

    run = _prefect(any_server, tmp_path, "deployment", "run", "dep-flow/pooled", "-p", "n=3")
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", run)
    assert run_id, run
    flow_run = httpx.get(f"{any_server.api_url}/flow_runs/{run_id.group(1)}").json()
    assert flow_run["state_type"] == "SCHEDULED"
    assert flow_run["deployment_id"] == ids["pooled"]
    assert flow_run["parameters"] == {"msg": "from-deployment", "n": 3}
    assert flow_run["work_pool_name"] == "p1" and flow_run["work_queue_name"] == "default"
    polled = httpx.post(
        f"{any_server.api_url}/work_pools/p1/get_scheduled_flow_runs",
        json={"work_queue_names": [], "scheduled_before": "2100-01-01 00:00:00+00:00"},
    ).json()
    # The manual run, plus whatever the scheduler has already materialised.
    manual = [r["flow_run"] for r in polled if not r["flow_run"]["auto_scheduled"]]
    assert [r["id"] for r in manual] == [run_id.group(1)]
    assert all(r["flow_run"]["deployment_id"] == ids["pooled"] for r in polled)

    schedules = _prefect(any_server, tmp_path, "deployment", "schedule", "ls", "dep-flow/pooled")
    assert "interval" in schedules
    _prefect(
        any_server,
        tmp_path,
        "deployment",
        "schedule",
        "create",
        "dep-flow/pooled",
        "--cron",
        "0 * * * *",
    )
    listed = httpx.get(f"{any_server.api_url}/deployments/{ids['pooled']}/schedules").json()
    cron = next(s for s in listed if "cron" in s["schedule"])
    _prefect(any_server, tmp_path, "deployment", "schedule", "pause", "dep-flow/pooled", cron["id"])
    paused = httpx.get(f"{any_server.api_url}/deployments/{ids['pooled']}/schedules").json()
    assert next(s for s in paused if s["id"] == cron["id"])["active"] is False
    _prefect(
        any_server, tmp_path, "deployment", "schedule", "resume", "dep-flow/pooled", cron["id"]
    )
    resumed = httpx.get(f"{any_server.api_url}/deployments/{ids['pooled']}/schedules").json()
    assert next(s for s in resumed if s["id"] == cron["id"])["active"] is True

    missing = run_client(
        any_server, ["-m", "prefect", "deployment", "inspect", "dep-flow/nope"], tmp_path
    )
    assert missing.returncode != 0 and "not found" in missing.stdout.lower()


def test_worker_rest_calls_and_bad_input(sqlite_server: RunningServer) -> None:
    api = sqlite_server.api_url
    with httpx.Client(base_url=api + "/") as http:
        assert http.post("work_pools/", json={"name": "w", "type": "process"}).status_code == 201
        beat = http.post(
            "work_pools/w/workers/heartbeat", json={"name": "w1", "heartbeat_interval_seconds": 30}
        )
        assert beat.status_code == 204
        online = http.post(
            "work_pools/w/workers/filter", json={"workers": {"status": {"any_": ["ONLINE"]}}}
        )
        assert [w["name"] for w in online.json()] == ["w1"]
        assert http.get("work_pools/w").json()["status"] == "READY"
        assert http.get("collections/views/aggregate-worker-metadata").json() == {}
        assert http.delete("automations/owned-by/prefect.deployment.x").status_code == 202
        assert http.get("automations/related-to/prefect.deployment.x").json() == []

        unknown = http.get("work_pools/nope")
        assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
        assert http.post("work_pools/nope/get_scheduled_flow_runs", json={}).status_code == 404
        dup = http.post("work_pools/", json={"name": "w", "type": "process"})
        assert dup.status_code == 409 and "already exists" in dup.json()["detail"]
        assert http.post("work_pools/w/queues", json={"name": "q"}).status_code == 201
        assert http.post("work_pools/w/queues", json={"name": "q"}).status_code == 409
        assert http.post("work_pools/", json={"name": "a/b", "type": "process"}).status_code == 422

        flow = http.post("flows/", json={"name": "bad-input-flow"}).json()
        base = {"name": "d", "flow_id": flow["id"]}
        for schedule in (
            {"cron": "not a cron"},
            {"interval": -5},
            {"rrule": "FREQ=DAILY", "cron": "* * * * *"},
            {"cron": "* * * * *", "timezone": "Mars/Olympus"},
            {"every": 5},
        ):
            bad = http.post("deployments/", json={**base, "schedules": [{"schedule": schedule}]})
            assert bad.status_code == 422, (schedule, bad.text)
        no_pool = http.post("deployments/", json={**base, "work_pool_name": "missing"})
        assert no_pool.status_code == 404 and "missing" in no_pool.json()["detail"]
        assert http.get("deployments/not-a-uuid").status_code == 422
        made = http.post("deployments/", json=base)
        assert made.status_code == 201
        assert http.post("deployments/", json=base).status_code == 200
        assert (
            http.post(
                f"deployments/{made.json()['id']}/schedules", json=[{"schedule": {}}]
            ).status_code
            == 422
        )

        # enforce_parameter_schema: runs (and parameter updates) must conform.
        schema = {
            "type": "object",
            "properties": {"x": {"type": "integer", "position": 0}},
            "required": ["x"],
        }
        strict = http.post(
            "deployments/",
            json={**base, "name": "strict", "parameter_openapi_schema": schema},
        ).json()
        assert strict["enforce_parameter_schema"] is True
        wrong = http.post(
            f"deployments/{strict['id']}/create_flow_run", json={"parameters": {"x": "a"}}
        )
        assert wrong.status_code == 409
        assert wrong.json()["detail"] == (
            "Error creating flow run: Validation failed for field 'x'. "
            "Failure reason: 'a' is not of type 'integer'"
        )
        missing = http.post(f"deployments/{strict['id']}/create_flow_run", json={})
        assert missing.status_code == 409 and "'x' is a required property" in missing.text
        lenient = http.post(
            f"deployments/{strict['id']}/create_flow_run",
            json={"parameters": {"x": "a"}, "enforce_parameter_schema": False},
        )
        assert lenient.status_code == 201
        ok = http.post(f"deployments/{strict['id']}/create_flow_run", json={"parameters": {"x": 2}})
        assert ok.status_code == 201 and ok.json()["parameters"] == {"x": 2}
        bad_update = http.patch(f"deployments/{strict['id']}", json={"parameters": {"x": 1.5}})
        assert bad_update.status_code == 409 and "field 'x'" in bad_update.json()["detail"]
        assert http.patch(f"deployments/{strict['id']}", json={"parameters": {}}).status_code == 204

    # The 3.9 worker channel is answered 404 so workers fall back to REST heartbeats.
    upgrade = httpx.get(
        f"{api}/work_pools/w/workers/connect",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert upgrade.status_code == 404
