"""flow.serve(): headrace schedules the runs, the serving process runs them (real client)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import RunningServer, client_python, run_client

SCRIPTS = Path(__file__).parent / "scripts"


def _runs(server: RunningServer, tmp_path: Path) -> dict:
    listed = run_client(server, [str(SCRIPTS / "list_runs.py"), "tick-dep"], tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    return json.loads(listed.stdout.strip().splitlines()[-1])


def _wait(predicate, timeout: float = 90.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def test_serve_runs_scheduled_and_manual_runs(sqlite_server: RunningServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    home = tmp_path / "serve-home"
    home.mkdir()
    env.update(
        PREFECT_API_URL=sqlite_server.api_url,
        PREFECT_HOME=str(home),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [client_python(), str(SCRIPTS / "serve_ticker.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:

        def two_scheduled_runs_completed() -> dict:
            state = _runs(sqlite_server, tmp_path)
            done = [r for r in state["runs"] if r["auto"] and r["state"] == "COMPLETED"]
            return state if len(done) >= 2 else {}

        state = _wait(two_scheduled_runs_completed)
        assert state, (tmp_path / "serve.log").read_text()[-3000:]
        assert all(r["parameters"] == {"msg": "served"} for r in state["runs"] if r["auto"])

        manual = run_client(
            sqlite_server,
            ["-m", "prefect", "deployment", "run", "ticker/tick-dep", "-p", "msg=manual"],
            tmp_path,
        )
        assert manual.returncode == 0, manual.stderr[-2000:]

        def manual_completed() -> dict:
            state = _runs(sqlite_server, tmp_path)
            done = [
                r
                for r in state["runs"]
                if r["parameters"] == {"msg": "manual"} and r["state"] == "COMPLETED"
            ]
            return state if done else {}

        assert _wait(manual_completed), (tmp_path / "serve.log").read_text()[-3000:]

        listed = run_client(sqlite_server, ["-m", "prefect", "deployment", "ls"], tmp_path)
        assert "ticker/tick-dep" in listed.stdout
        inspect = run_client(
            sqlite_server, ["-m", "prefect", "deployment", "inspect", "ticker/tick-dep"], tmp_path
        )
        assert inspect.returncode == 0 and "tick-dep" in inspect.stdout, inspect.stderr[-2000:]

        schedule_id = state["schedules"][0]
        paused = run_client(
            sqlite_server,
            ["-m", "prefect", "deployment", "schedule", "pause", "ticker/tick-dep", schedule_id],
            tmp_path,
        )
        assert paused.returncode == 0, paused.stdout + paused.stderr[-2000:]
        after_pause = _runs(sqlite_server, tmp_path)
        assert not [r for r in after_pause["runs"] if r["auto"] and r["state"] == "SCHEDULED"], (
            "pausing the schedule removes the runs it no longer wants"
        )
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
        log.close()
    assert _runs(sqlite_server, tmp_path)["paused"] is True, "serve() pauses its deployment on exit"
