"""Work queues with the real client: `prefect work-queue ...`, pool views, pool-less queues.

Covers the queue routes the 3.9.1 client and CLI call besides the pool's own:
``POST /work_queues/`` (a queue without a pool goes to ``default-agent-pool``),
``GET /work_queues/name/{name}``, ``POST /work_queues/{id}/get_runs``,
``GET /work_queues/{id}/status``, the two ``concurrency_status`` views and
``POST /deployments/{id}/branch``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import RunningServer, run_client

SCRIPT = str(Path(__file__).parent / "scripts" / "work_queue_ops.py")
MISSING = "00000000-0000-4000-8000-000000000000"


def _run(server: RunningServer, tmp_path: Path, *args: str) -> str:
    ran = run_client(server, list(args), tmp_path)
    assert ran.returncode == 0, f"{args}:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}"
    return ran.stdout


def _prefect(server: RunningServer, tmp_path: Path, *args: str) -> str:
    return _run(server, tmp_path, "-m", "prefect", *args)


def _json(stdout: str) -> Any:
    """The JSON document a command printed (``-o json`` output spans lines)."""
    start = min(i for i in (stdout.find("{"), stdout.find("[")) if i >= 0)
    return json.loads(stdout[start:])


def test_work_queue_cli(sqlite_server: RunningServer, tmp_path: Path) -> None:
    server = sqlite_server
    out = _prefect(server, tmp_path, "work-queue", "create", "agent-q")
    assert "work pool - 'default-agent-pool'" in out, out
    _prefect(server, tmp_path, "work-pool", "create", "--type", "process", "p1")
    out = _prefect(server, tmp_path, "work-queue", "create", "q2", "--pool", "p1", "--limit", "3")
    assert "concurrency limit - 3" in out, out
    runs = _json(_run(server, tmp_path, SCRIPT, "runs", "p1", "q2"))

    listed = _prefect(server, tmp_path, "work-queue", "ls")
    for name in ("agent-q", "default-agent-pool", "q2", "p1"):
        assert name in listed, listed
    assert "q2" in _prefect(server, tmp_path, "work-queue", "ls", "--pool", "p1")

    assert "paused" in _prefect(server, tmp_path, "work-queue", "pause", "q2", "-p", "p1")
    paused = _prefect(server, tmp_path, "work-queue", "preview", "q2", "-p", "p1")
    assert "No runs found" in paused, paused  # a paused queue offers nothing
    assert "resumed" in _prefect(server, tmp_path, "work-queue", "resume", "q2", "-p", "p1")
    preview = _prefect(server, tmp_path, "work-queue", "preview", "q2", "-p", "p1", "-o", "json")
    assert [r["id"] for r in _json(preview)] == [runs["scheduled"]]
    pool_preview = _prefect(server, tmp_path, "work-pool", "preview", "p1", "-o", "json")
    assert [r["id"] for r in _json(pool_preview)] == [runs["scheduled"]]
    read = _prefect(server, tmp_path, "work-queue", "read-runs", "q2", "-p", "p1")
    assert "Read 0 runs" in read, read  # its one scheduled run is 10 minutes away

    _prefect(server, tmp_path, "work-queue", "set-concurrency-limit", "agent-q", "5")
    inspected = _json(_prefect(server, tmp_path, "work-queue", "inspect", "agent-q", "-o", "json"))
    assert inspected["concurrency_limit"] == 5
    assert inspected["work_pool_name"] == "default-agent-pool"
    # Never polled: unhealthy under the reference's policy.
    assert inspected["status_details"]["healthy"] is False
    _prefect(server, tmp_path, "work-queue", "clear-concurrency-limit", "agent-q")
    cleared = _json(_prefect(server, tmp_path, "work-queue", "inspect", "agent-q", "-o", "json"))
    assert cleared["concurrency_limit"] is None
    assert "No runs found" in _prefect(server, tmp_path, "work-queue", "preview", "agent-q")

    queue = _json(
        _prefect(server, tmp_path, "work-queue", "inspect", "q2", "-p", "p1", "-o", "json")
    )
    assert queue["status_details"]["healthy"] is True  # just polled, nothing Late
    assert queue["status_details"]["late_runs_count"] == 0
    assert queue["active_slots"] == 1  # the RUNNING run

    pool_slots = _json(_prefect(server, tmp_path, "work-pool", "slots", "p1", "-o", "json"))
    assert pool_slots["active_slots"] == 1
    by_queue = {q["queue_name"]: q for q in pool_slots["queues"]}
    assert by_queue["q2"]["active_slots"] == 1 and by_queue["q2"]["concurrency_limit"] == 3
    assert [r["id"] for r in by_queue["q2"]["flow_runs"]] == [runs["running"]]
    assert by_queue["default"]["flow_runs"] == []
    queue_slots = _json(
        _prefect(server, tmp_path, "work-queue", "slots", "q2", "-p", "p1", "-o", "json")
    )
    assert queue_slots["active_slots"] == 1 and queue_slots["concurrency_limit"] == 3
    assert queue_slots["flow_runs"][0]["state_type"] == "RUNNING"
    assert "p1" in _prefect(server, tmp_path, "work-pool", "inspect", "p1")

    branch = _json(_run(server, tmp_path, SCRIPT, "branch", runs["deployment"]))
    assert branch["name"] == "queued:feature" and branch["description"] == "branched"
    assert branch["work_queue_name"] == "q2"
    assert branch["schedules_active"] == [False]  # schedule_handling=inactive
    assert branch["again"] == "409"


def test_poolless_queues_and_bad_input(sqlite_server: RunningServer, tmp_path: Path) -> None:
    legacy = _json(_run(sqlite_server, tmp_path, SCRIPT, "legacy"))
    assert legacy["pool"] == "default-agent-pool" and legacy["limit"] == 2
    assert legacy["active_slots"] == 0
    assert legacy["duplicate"] == "409" and legacy["by_name"] is True
    assert legacy["pulled"] == 0
    assert legacy["healthy"] is True and legacy["polled"] is True  # get_runs is a poll
    assert legacy["policy"] == {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60}
    assert legacy["slots"]["count"] == 0 and legacy["slots"]["page"] == 1
    assert legacy["missing"] == "404" and legacy["missing_slots"] == "404"

    api = sqlite_server.api_url
    with httpx.Client(base_url=api, timeout=10) as client:
        for method, path in [
            ("GET", f"/work_queues/{MISSING}/status"),
            ("POST", f"/work_queues/{MISSING}/get_runs"),
            ("POST", f"/work_queues/{MISSING}/concurrency_status"),
            ("POST", "/work_pools/nope/concurrency_status"),
            ("GET", "/work_queues/name/nope"),
            ("POST", f"/deployments/{MISSING}/branch"),
        ]:
            body = {"branch": "b"} if path.endswith("branch") else {}
            answer = client.request(method, path, json=body)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["detail"], path
        for method, path, body in [
            ("GET", "/work_queues/not-a-uuid/status", None),
            ("POST", "/work_queues/not-a-uuid/get_runs", {}),
            ("POST", f"/work_queues/{MISSING}/get_runs", {"limit": -1}),
            ("POST", f"/work_queues/{MISSING}/concurrency_status", {"page": 0}),
            ("POST", "/work_pools/p/concurrency_status", {"flow_run_limit": 201}),
            ("POST", "/work_queues/", {"name": "a/b"}),
            ("POST", "/work_queues/", {}),
            ("POST", f"/deployments/{MISSING}/branch", {"branch": ""}),
            (
                "POST",
                f"/deployments/{MISSING}/branch",
                {"branch": "b", "options": {"schedule_handling": "sometimes"}},
            ),
        ]:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 422, (path, body, answer.text)
            assert answer.json()["detail"], path
