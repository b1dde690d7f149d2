"""Background tasks with the real client: ``task.delay()`` and task worker processes.

Every task appends ``<task run id> <pid> <task>`` to a log file, so each test
checks that no run executed twice. Workers and callers share ``PREFECT_HOME``
(the parameters and results live in its local storage). The delivery scenarios
run on SQLite and Postgres.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, client_python, run_client

SCRIPT = Path(__file__).parent / "scripts" / "background_tasks.py"
LEASE_SECONDS = 30  # headrace.task_queue.DEFAULT_LEASE_SECONDS


def client_env(server: RunningServer, tmp_path: Path, slow_seconds: float = 3) -> dict[str, str]:
    """The environment ``run_client`` gives callers; workers get the same one."""
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HEADRACE_"))}
    env.update(
        PREFECT_API_URL=server.api_url,
        PREFECT_HOME=str(home),
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
        SLOW_SECONDS=str(slow_seconds),
    )
    return env


def subscriptions(server: RunningServer) -> int:
    """Task-worker subscriptions the server has logged since it was first started."""
    return server.log_path.read_text(errors="replace").count("subscribed to")


@dataclass
class Workers:
    """Task worker processes serving the script's tasks; stopped by pid at the end."""

    server: RunningServer
    tmp_path: Path
    log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, limit: int = 10, slow_seconds: float = 3) -> subprocess.Popen[bytes]:
        subscribed = subscriptions(self.server)
        output = (self.tmp_path / f"worker-{len(self.processes)}.log").open("ab")
        process = subprocess.Popen(
            [client_python(), str(SCRIPT), "serve", str(self.log), str(limit)],
            env=client_env(self.server, self.tmp_path, slow_seconds),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=self.tmp_path,
        )
        self.processes.append(process)
        deadline = time.monotonic() + 60
        while subscriptions(self.server) <= subscribed:
            assert process.poll() is None, self.output()
            assert time.monotonic() < deadline, "the task worker did not subscribe"
            time.sleep(0.2)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)

    def output(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in self.tmp_path.glob("worker-*.log")
        )

    def executions(self) -> list[tuple[str, int, str]]:
        """(task run id, pid, task) per execution, in order."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().split()
        return [(lines[i], int(lines[i + 1]), lines[i + 2]) for i in range(0, len(lines), 3)]


@pytest.fixture
def workers(any_server: RunningServer, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(any_server, tmp_path, tmp_path / "tasks.log")
    yield pool
    pool.stop_all()


def call(server: RunningServer, tmp_path: Path, *args: str, timeout: float = 300) -> Any:
    """Run the script as a caller; its last output line (JSON)."""
    env = client_env(server, tmp_path)
    done = subprocess.run(
        [client_python(), str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_each_ran_once(workers: Workers, task: str = "double") -> list[tuple[str, int, str]]:
    runs = [e for e in workers.executions() if e[2] == task]
    twice = [run_id for run_id, n in Counter(r[0] for r in runs).items() if n > 1]
    assert not twice, f"ran more than once: {twice}"
    return runs


def task_run(server: RunningServer, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.api_url}/task_runs/{run_id}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_100_delays_across_two_task_workers(
    any_server: RunningServer, workers: Workers, tmp_path: Path
) -> None:
    first, second = workers.start(), workers.start()

    out = call(any_server, tmp_path, "delay", "100")

    assert out["results"] == [2 * i for i in range(100)]
    runs = assert_each_ran_once(workers)
    assert len(runs) == 100
    assert {pid for _, pid, _ in runs} == {first.pid, second.pid}, "one worker did everything"
    listed = run_client(
        any_server,
        ["-m", "prefect", "task-run", "ls", "--limit", "200", "--output", "json"],
        tmp_path,
    )
    assert listed.returncode == 0, listed.stderr[-3000:]
    states = {r["id"]: r["state"]["type"] for r in json.loads(listed.stdout)}
    assert all(states[run_id] == "COMPLETED" for run_id, _, _ in runs)
    table = run_client(any_server, ["-m", "prefect", "task-run", "ls"], tmp_path)
    assert table.returncode == 0 and "COMPLETED" in table.stdout
    assert task_run(any_server, runs[0][0])["state_type"] == "COMPLETED"


def test_a_failing_task_retries_in_its_worker(
    any_server: RunningServer, workers: Workers, tmp_path: Path
) -> None:
    workers.start()

    recovered = call(any_server, tmp_path, "flaky", "1")
    exhausted = call(any_server, tmp_path, "flaky", "5")

    assert recovered["result"] == "ok after 2 attempts"
    assert exhausted["state"] == "FAILED" and "attempt 3 fails" in exhausted["error"]
    attempts = Counter(run_id for run_id, _, task in workers.executions() if task == "flaky")
    assert attempts == {recovered["id"]: 2, exhausted["id"]: 3}
    assert task_run(any_server, recovered["id"])["state_type"] == "COMPLETED"
    assert task_run(any_server, exhausted["id"])["state_type"] == "FAILED"


def test_runs_queued_before_a_restart_are_delivered_after_it(
    any_server: RunningServer, workers: Workers, tmp_path: Path
) -> None:
    ids = call(any_server, tmp_path, "submit", "10")["ids"]
    assert any_server.stop() == 0
    any_server.start()
    workers.start()

    out = call(any_server, tmp_path, "results", *ids)

    assert out["results"] == [2 * i for i in range(10)]
    assert sorted(r[0] for r in assert_each_ran_once(workers)) == sorted(ids)


def test_a_worker_that_stays_connected_through_a_restart_keeps_working(
    any_server: RunningServer, workers: Workers, tmp_path: Path
) -> None:
    worker = workers.start()
    assert call(any_server, tmp_path, "delay", "2")["results"] == [0, 2]
    subscribed = subscriptions(any_server)
    assert any_server.stop() == 0
    any_server.start()
    deadline = time.monotonic() + 30
    while subscriptions(any_server) == subscribed:  # it reconnects by itself
        assert worker.poll() is None, workers.output()
        assert time.monotonic() < deadline, "the worker did not come back"
        time.sleep(0.2)

    assert call(any_server, tmp_path, "delay", "3")["results"] == [0, 2, 4]
    assert worker.poll() is None
    assert_each_ran_once(workers)


def test_a_killed_worker_s_queued_runs_go_to_the_next_worker(
    any_server: RunningServer, workers: Workers, tmp_path: Path
) -> None:
    """Worker A (one task at a time) holds a running run, an acknowledged one waiting
    for its slot, and a pushed unacknowledged one when it is killed; the rest are
    queued. Worker B gets everything A had not started: the unacknowledged run at
    once, the acknowledged one when its lease lapses."""
    doomed = workers.start(limit=1, slow_seconds=20)
    ids = call(any_server, tmp_path, "submit", "6", "slow")["ids"]
    time.sleep(1.5)  # A acknowledges the second run and is pushed the third
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    started_by_a = {run_id for run_id, pid, _ in workers.executions() if pid == doomed.pid}
    assert len(started_by_a) == 1, workers.output()
    rescued = [i for i in ids if i not in started_by_a]
    survivor = workers.start(slow_seconds=1)

    begun = time.monotonic()
    out = call(any_server, tmp_path, "results", *rescued)

    assert out["results"] == [2 * ids.index(i) for i in rescued]
    runs = assert_each_ran_once(workers, "slow")
    assert {run_id for run_id, pid, _ in runs if pid == survivor.pid} == set(rescued)
    assert time.monotonic() - begun < LEASE_SECONDS + 60
    assert "claims lapsed: requeued 1 background task run(s)" in any_server.log_path.read_text()
    # The run A had started stays as A left it: it is never run a second time.
    lost = task_run(any_server, next(iter(started_by_a)))
    assert lost["state_type"] in ("RUNNING", "PENDING")
