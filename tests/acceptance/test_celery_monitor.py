"""The Celery monitor as a user runs it: ``headrace server start`` with a broker, or split.

* ``HEADRACE_CELERY_BROKER_URL`` makes ``headrace server start`` run the monitor:
  a real worker's tasks show up in ``/flower/api/tasks``, the worker in
  ``/flower/api/workers``; SIGTERM stops it all with exit code 0.
* ``headrace celery monitor --broker URL`` beside an API-only server on the same
  database: the API answers what the monitor stored; SIGTERM exits 0.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, make_server, wait_for
from tests.integration import celery_harness as h

# One broker (Redis db 7, RabbitMQ): under pytest-xdist these tests share a worker.
pytestmark = pytest.mark.xdist_group("celery-broker")


def _flower(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(f"http://127.0.0.1:{server.port}/flower/api{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _run_tasks(server: RunningServer, queue: str, worker: str) -> None:
    """Send 5 successes and a failure to a real worker; check what the API shows."""
    # Redis events are pub/sub: only once the worker's heartbeats arrive is the
    # monitor surely listening (Flower's benchmark waits the same way).
    wait_for(lambda: _flower(server, "/workers", status="true").get(worker), 60, "the worker")
    app = h.client_app(h.REDIS_URL, queue)
    ids = [str(app.send_task("tiny.add", args=(i, 1)).id) for i in range(5)]
    failing = str(app.send_task("tiny.boom", args=(7,)).id)

    def settled() -> bool:
        tasks = _flower(server, "/tasks")
        states = [tasks.get(i, {}).get("state") for i in ids]
        return states == ["SUCCESS"] * 5 and tasks.get(failing, {}).get("state") == "FAILURE"

    wait_for(settled, 60, "the tasks' final states")
    assert set(_flower(server, "/tasks", state="FAILURE")) == {failing}
    assert _flower(server, f"/task/info/{ids[2]}")["result"] == "3"
    assert _flower(server, "/workers", status="true") == {worker: True}


def _worker(tmp_path: Path) -> tuple[str, str, subprocess.Popen[bytes]]:
    suffix = uuid.uuid4().hex[:6]
    queue, name = f"hr-accept-{suffix}", f"w@accept{suffix}"
    return queue, name, h.start_worker(h.REDIS_URL, queue, name, tmp_path / "worker.log")


def test_server_start_runs_the_monitor(tmp_path: Path) -> None:
    h.require_broker(h.REDIS_URL)
    server = make_server(tmp_path, HEADRACE_CELERY_BROKER_URL=h.REDIS_URL)
    queue, name, worker = _worker(tmp_path)
    try:
        server.start()
        _run_tasks(server, queue, name)
        assert server.stop() == 0
        assert "celery monitor consuming events" in server.log()
    finally:
        h.stop(worker)
        if server.process and server.process.poll() is None:
            server.stop()


def test_celery_monitor_command_beside_an_api_only_server(tmp_path: Path) -> None:
    h.require_broker(h.REDIS_URL)
    server = make_server(tmp_path)
    server.extra_args = ["--no-services"]
    queue, name, worker = _worker(tmp_path)
    monitor: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        command = [sys.executable, "-m", "headrace.cli", "celery", "monitor"]
        refused = subprocess.run(command, env=server.env, capture_output=True, text=True)
        assert refused.returncode == 2
        assert "give --broker URL or set HEADRACE_CELERY_BROKER_URL" in refused.stderr
        bad = subprocess.run(
            [*command, "--broker", "http://x"], env=server.env, capture_output=True, text=True
        )
        assert bad.returncode == 2 and "--broker" in bad.stderr

        log = tmp_path / "monitor.log"
        monitor = subprocess.Popen(
            [*command, "--broker", h.REDIS_URL],
            env=server.env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "consuming events" in log.read_text(), 60, "the monitor to subscribe")
        _run_tasks(server, queue, name)
        monitor.terminate()
        assert monitor.wait(30) == 0, log.read_text()
        assert server.stop() == 0
    finally:
        h.stop(worker)
        if monitor is not None:
            h.stop(monitor)
        if server.process and server.process.poll() is None:
            server.stop()
