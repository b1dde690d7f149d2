"""Deployment concurrency limits with the real client: flow.serve() runs them (issue #5)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.acceptance.test_concurrency import SCRIPT, client_env, finish, most_inside, spawn
from tests.conftest import RunningServer, client_python

DONE = {"COMPLETED", "CANCELLED", "FAILED", "CRASHED"}


def serve(server: RunningServer, tmp_path: Path, strategy: str, record: Path) -> subprocess.Popen:
    env = {
        **client_env(server, tmp_path),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "CONCURRENCY_RECORD": str(record),
    }
    log = (tmp_path / "serve.log").open("w")
    return subprocess.Popen(
        [client_python(), SCRIPT, "serve", strategy],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )


def settled(server: RunningServer, tmp_path: Path, ids: list[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        states = finish(spawn(server, tmp_path, "states", *ids))
        if all(s["type"] in DONE for s in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def start_two(server: RunningServer, tmp_path: Path) -> list[str]:
    # The deployment exists once the serving process has registered it.
    deadline = time.monotonic() + 60
    while True:
        started = spawn(server, tmp_path, "start-runs", "2")
        out, err = started.communicate(timeout=120)
        if started.returncode == 0:
            return list(json.loads(out.strip().splitlines()[-1])["ids"])
        assert time.monotonic() < deadline, err[-3000:]
        time.sleep(1)


def test_enqueue_runs_one_at_a_time(sqlite_server: RunningServer, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    serving = serve(sqlite_server, tmp_path, "ENQUEUE", record)
    try:
        ids = start_two(sqlite_server, tmp_path)
        states = settled(sqlite_server, tmp_path, ids)
    finally:
        serving.terminate()
        serving.wait(30)
    log = (tmp_path / "serve.log").read_text()[-3000:]
    assert [s["type"] for s in states.values()] == ["COMPLETED", "COMPLETED"], (states, log)
    assert most_inside(record) == (1, 2, 2)  # they did not overlap


def test_cancel_new_cancels_the_run_that_finds_no_slot(
    sqlite_server: RunningServer, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    serving = serve(sqlite_server, tmp_path, "CANCEL_NEW", record)
    try:
        ids = start_two(sqlite_server, tmp_path)
        states = settled(sqlite_server, tmp_path, ids)
    finally:
        serving.terminate()
        serving.wait(30)
    log = (tmp_path / "serve.log").read_text()[-3000:]
    outcomes = sorted((s["type"], s["msg"] or "") for s in states.values())
    assert [o[0] for o in outcomes] == ["CANCELLED", "COMPLETED"], (states, log)
    assert outcomes[0][1] == "Deployment concurrency limit reached."
    assert most_inside(record) == (1, 1, 1)


def test_a_second_pending_run_waits_for_a_slot(any_server: RunningServer, tmp_path: Path) -> None:
    finish(spawn(any_server, tmp_path, "register", "ENQUEUE"))
    race = finish(spawn(any_server, tmp_path, "pending-race"))
    assert (race["run0"]["status"], race["run0"]["type"]) == ("ACCEPT", "PENDING")
    assert race["run0"]["lease"] not in (None, "None")
    assert (race["run1"]["status"], race["run1"]["name"]) == ("REJECT", "AwaitingConcurrencySlot")
    assert race["limit"] == {"limit": 1, "active_slots": 1}
