"""Deployments run by a real `prefect worker start` (prefect==3.9.1), on SQLite and Postgres.

The worker is a subprocess started with ``Popen`` and killed by its pid at the end. Flows
come from local source (``flow.from_source(<dir>, "worker_flows.py:fn").deploy(...)``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import RunningServer, client_python, run_client

SCRIPTS = Path(__file__).parent / "scripts"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


def _json_line(stdout: str) -> object:
    return json.loads(stdout.strip().splitlines()[-1])


def _client(server: RunningServer, tmp_path: Path, *args: str, timeout: float = 180) -> str:
    ran = run_client(server, list(args), tmp_path, timeout=timeout)
    assert ran.returncode == 0, (
        f"{' '.join(args)}:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}\n{server.log()}"
    )
    return ran.stdout


def _prefect(server: RunningServer, tmp_path: Path, *args: str) -> str:
    return _client(server, tmp_path, "-m", "prefect", *args)


def _setup_pool_and_deployments(server: RunningServer, tmp_path: Path) -> dict[str, str]:
    out = _prefect(server, tmp_path, "work-pool", "create", "--type", "process", "p1")
    assert "Created work pool 'p1'" in out
    source = tmp_path / "flowsrc"
    source.mkdir()
    shutil.copy(SCRIPTS / "worker_src" / "worker_flows.py", source / "worker_flows.py")
    deployed = _client(
        server, tmp_path, str(SCRIPTS / "worker_ops.py"), "deploy", "p1", str(source)
    )
    ids = _json_line(deployed)
    assert isinstance(ids, dict) and sorted(ids) == ["greet", "parent", "sleeper"]
    return ids


@contextmanager
def _worker(server: RunningServer, tmp_path: Path) -> Iterator[Path]:
    """``prefect worker start --pool p1`` as a subprocess; killed by pid on exit."""
    prefect_home = tmp_path / "prefect-home"
    prefect_home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    env.update(
        {
            "PREFECT_API_URL": server.api_url,
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
            # Leave the polling fallback slow (default 120 s) so a prompt cancel proves
            # the worker heard the prefect.flow-run.Cancelling event on /events/out.
            "COLUMNS": "250",
        }
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [client_python(), "-m", "prefect", "worker", "start", "--pool", "p1", "--name", "w1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        yield log_path
    finally:
        if process.poll() is None:
            # The worker's own process group holds the flow-run subprocesses it started.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _worker_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-4000:]


def _wait_run(
    server: RunningServer, run_id: str, states: set[str], timeout: float, log_path: Path
) -> dict:
    deadline = time.monotonic() + timeout
    run: dict = {}
    while time.monotonic() < deadline:
        run = httpx.get(f"{server.api_url}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in states:
            return run
        time.sleep(0.5)
    raise AssertionError(
        f"run {run_id} still {run.get('state_type')}/{run.get('state_name')} after {timeout}s,"
        f" wanted {states}\nworker:\n{_worker_log(log_path)}\nserver:\n{server.log()}"
    )


def _state_names(server: RunningServer, run_id: str) -> list[str]:
    states = httpx.get(
        f"{server.api_url}/flow_run_states/", params={"flow_run_id": run_id}, timeout=10
    ).json()
    return [s["name"] for s in states]


def test_worker_runs_deployments(any_server: RunningServer, tmp_path: Path) -> None:
    ids = _setup_pool_and_deployments(any_server, tmp_path)
    assert "p1" in _prefect(any_server, tmp_path, "work-pool", "ls")
    with _worker(any_server, tmp_path) as worker_log:
        out = tmp_path / "greet-out.json"
        params = {"name": "ada", "n": 2, "out": str(out)}
        ran = run_client(
            any_server,
            [str(SCRIPTS / "worker_ops.py"), "run", "greet/d", json.dumps(params), "120"],
            tmp_path,
            timeout=180,
        )
        assert ran.returncode == 0, ran.stderr[-3000:] + _worker_log(worker_log)
        result = _json_line(ran.stdout)
        assert isinstance(result, dict)
        assert result["state_type"] == "COMPLETED", f"{result}\n{_worker_log(worker_log)}"
        assert result["parameters"] == params
        assert json.loads(out.read_text()) == {"name": "ada", "n": 2, "text": "hello ada" * 2}

        run = httpx.get(f"{any_server.api_url}/flow_runs/{result['id']}").json()
        assert run["deployment_id"] == ids["greet"]
        assert run["work_pool_name"] == "p1" and run["work_queue_name"] == "default"
        assert run["infrastructure_pid"], "the worker records the process it started"
        assert run["labels"].get("prefect.worker.name") == "w1"
        assert _state_names(any_server, result["id"]) == [
            "Scheduled",
            "Pending",
            "Submitting",
            "Running",
            "Completed",
        ]

        workers = _json_line(
            _client(any_server, tmp_path, str(SCRIPTS / "worker_ops.py"), "workers", "p1")
        )
        assert workers == [{"name": "w1", "status": "ONLINE"}]
        pool = httpx.get(f"{any_server.api_url}/work_pools/p1").json()
        assert pool["status"] == "READY"
        assert "p1" in _prefect(any_server, tmp_path, "work-pool", "ls")

        # 3. An ad-hoc run from the CLI is picked up and completed by the same worker.
        cli_out = tmp_path / "cli-out.json"
        started = _prefect(
            any_server,
            tmp_path,
            "deployment",
            "run",
            "greet/d",
            "-p",
            "name=cli",
            "-p",
            f"out={cli_out}",
        )
        found = re.search(r"UUID: ([0-9a-f-]{36})", started)
        assert found, started
        done = _wait_run(any_server, found.group(1), TERMINAL, 120, worker_log)
        assert done["state_type"] == "COMPLETED", done
        assert json.loads(cli_out.read_text())["name"] == "cli"


def _start(server: RunningServer, tmp_path: Path, name: str, params: dict) -> str:
    """run_deployment(..., timeout=0): create the run and return its id at once."""
    ran = _client(
        server, tmp_path, str(SCRIPTS / "worker_ops.py"), "run", name, json.dumps(params), "0"
    )
    result = _json_line(ran)
    assert isinstance(result, dict) and result["state_type"] == "SCHEDULED", result
    return str(result["id"])


def _cancel(server: RunningServer, tmp_path: Path, run_id: str) -> None:
    out = _prefect(server, tmp_path, "flow-run", "cancel", run_id)
    assert "successfully scheduled for cancellation" in out, out


def _child_runs(server: RunningServer, parent_id: str) -> list[dict]:
    runs = httpx.post(
        f"{server.api_url}/flow_runs/filter",
        json={"flows": {"name": {"any_": ["child"]}}},
        timeout=10,
    ).json()
    children = []
    for run in runs:
        if run["parent_task_run_id"]:
            task = httpx.get(f"{server.api_url}/task_runs/{run['parent_task_run_id']}", timeout=10)
            if task.status_code == 200 and task.json()["flow_run_id"] == parent_id:
                children.append(run)
    return children


def test_worker_cancels_runs(any_server: RunningServer, tmp_path: Path) -> None:
    _setup_pool_and_deployments(any_server, tmp_path)
    with _worker(any_server, tmp_path) as worker_log:
        run_id = _start(any_server, tmp_path, "sleeper/d", {"seconds": 60})
        _wait_run(any_server, run_id, {"RUNNING"} | TERMINAL, 90, worker_log)
        cancel_started = time.monotonic()
        _cancel(any_server, tmp_path, run_id)
        # Well under the worker's 120 s polling fallback: the worker reacted to the
        # prefect.flow-run.Cancelling event it receives on /events/out.
        ended = _wait_run(any_server, run_id, TERMINAL, 45, worker_log)
        assert ended["state_type"] == "CANCELLED", ended
        assert time.monotonic() - cancel_started < 45
        names = _state_names(any_server, run_id)
        assert names[-2:] == ["Cancelling", "Cancelled"], names

        # A parent whose subflow is running: cancelling the parent kills its process.
        parent_id = _start(any_server, tmp_path, "parent/d", {"seconds": 60})
        deadline = time.monotonic() + 90
        children: list[dict] = []
        while time.monotonic() < deadline:
            children = _child_runs(any_server, parent_id)
            if children and children[0]["state_type"] == "RUNNING":
                break
            time.sleep(0.5)
        assert children and children[0]["state_type"] == "RUNNING", children
        _cancel(any_server, tmp_path, parent_id)
        parent = _wait_run(any_server, parent_id, TERMINAL, 45, worker_log)
        assert parent["state_type"] == "CANCELLED", parent
        # The subflow runs in the killed process: on the runner's SIGTERM the 3.9.1 engine
        # forces it through Cancelling -> Cancelled itself (client-side, force=True).
        # (A server-side cancellation-cleanup service would reach the same end state.)
        child = _wait_run(any_server, children[0]["id"], TERMINAL, 30, worker_log)
        assert child["state_type"] == "CANCELLED", child
        assert _state_names(any_server, child["id"])[-1] == "Cancelled"
