"""The seed user's split setup: an API-only process and two services processes on one Postgres.

50 interval deployments; the services process that holds the scheduler's lease is
killed with SIGKILL midway. The survivor must take over within a lease, keep
materialising every deployment's runs, and no run may exist twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer, make_server, wait_for

pytestmark = pytest.mark.postgres

INTERVAL = 5
DEPLOYMENTS = 50
LEASE_SECONDS = 3
HORIZON_SECONDS = 20


def _services_process(server: RunningServer, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "services", "start"],
        env=server.env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _holders(server: RunningServer) -> dict[str, str]:
    """``headrace services ls``: service name -> holder (or '-')."""
    out = subprocess.run(
        [sys.executable, "-m", "headrace.cli", "services", "ls"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    return {row[0]: row[1] for row in rows}


def _runs(http: httpx.Client) -> list[dict]:
    runs: list[dict] = []
    while True:
        page = http.post(
            "flow_runs/filter", json={"limit": 200, "offset": len(runs), "sort": "ID_DESC"}
        ).json()
        runs += page
        if len(page) < 200:
            return runs


def test_two_services_processes_share_the_work_and_survive_a_kill(
    pg_url: str, tmp_path: Path
) -> None:
    env = {
        "HEADRACE_SERVICE_LEASE_SECONDS": str(LEASE_SECONDS),
        "HEADRACE_SCHEDULER_HORIZON_SECONDS": str(HORIZON_SECONDS),
        "HEADRACE_SCHEDULER_MIN_RUNS": "1",
        "HEADRACE_LATE_RUNS_AFTER_SECONDS": "2",
    }
    api = make_server(tmp_path, pg_url, **env)
    api.extra_args = ["--no-services"]
    api.start()
    first = _services_process(api, tmp_path / "services-1.log")
    second = _services_process(api, tmp_path / "services-2.log")
    survivor: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=api.api_url + "/", timeout=30) as http:
            flow = http.post("flows/", json={"name": "split-flow"}).json()
            anchor = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            for i in range(DEPLOYMENTS):
                made = http.post(
                    "deployments/",
                    json={
                        "name": f"every-{i}",
                        "flow_id": flow["id"],
                        "schedules": [{"schedule": {"interval": INTERVAL, "anchor_date": anchor}}],
                    },
                )
                assert made.status_code == 201, made.text
            deployment_ids = {d["id"] for d in http.post("deployments/filter", json={}).json()}
            assert len(deployment_ids) == DEPLOYMENTS

            def every_deployment_scheduled() -> bool:
                return {r["deployment_id"] for r in _runs(http)} == deployment_ids

            wait_for(every_deployment_scheduled, 30, "runs of every deployment")
            holders = _holders(api)
            scheduler_pid = int(holders["scheduler"].split(":")[1])
            assert scheduler_pid in (first.pid, second.pid), holders
            # Every singleton runs in exactly one of the two processes (the Celery
            # monitor, without a broker configured, runs nowhere).
            assert holders.pop("celery-monitor") == "-"
            assert {int(h.split(":")[1]) for h in holders.values()} <= {first.pid, second.pid}

            victim, survivor = (first, second) if scheduler_pid == first.pid else (second, first)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            killed_at = datetime.now(UTC)

            wait_for(
                lambda: _holders(api)["scheduler"].split(":")[1] == str(survivor.pid),
                LEASE_SECONDS * 4,
                "the survivor to take the scheduler's lease",
            )
            # Past the dead scheduler's horizon: only the survivor can have made these.
            time.sleep(HORIZON_SECONDS / 2 + INTERVAL)
            wanted_until = killed_at + timedelta(seconds=HORIZON_SECONDS)

            runs = _runs(http)
            per_deployment: dict[str, list[datetime]] = {d: [] for d in deployment_ids}
            for run in runs:
                when = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
                per_deployment[run["deployment_id"]].append(when)
            duplicates = Counter(
                (r["deployment_id"], r["expected_start_time"]) for r in runs
            ).most_common(1)
            assert duplicates[0][1] == 1, f"a run exists twice: {duplicates}"
            for deployment_id, times in per_deployment.items():
                times.sort()
                gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}
                assert gaps == {float(INTERVAL)}, (deployment_id, sorted(gaps))
                assert times[-1] >= wanted_until, (deployment_id, times[-1], wanted_until)
            # The late-runs service moved too: runs long overdue are Late.
            overdue = [
                r
                for r in runs
                if datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00"))
                < datetime.now(UTC) - timedelta(seconds=4)
            ]
            assert overdue and all(r["state"]["name"] == "Late" for r in overdue)
            after = _holders(api)
            assert after.pop("celery-monitor") == "-"
            assert set(after.values()) == {after["scheduler"]}
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0
        assert _holders(api)["scheduler"] == "-"  # released on a clean stop
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        api.stop()
