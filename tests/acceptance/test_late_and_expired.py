"""Late runs and expired pauses with the real client (issue #5), on SQLite.

The server runs with ``HEADRACE_LATE_RUNS_AFTER_SECONDS=2`` so a run nobody picks up
turns Late quickly. Pauses use a 3 s timeout. The suspended-run case proves the
server's pause-expiration service acts on its own: the client process has exited,
and the Failed state carries the server's message, not the client's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, make_server, run_client

SCRIPTS = Path(__file__).parent / "scripts"
SCRIPT = str(SCRIPTS / "late_and_expired.py")
SERVER_PAUSE_MESSAGE = "The flow was paused and never resumed."
"""What headrace's pause-expiration service writes (the reference's wording)."""
CLIENT_PAUSE_MESSAGE = "FlowPauseTimeout"
"""What the client's engine writes when its own wait for a resume times out."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = make_server(tmp_path, HEADRACE_LATE_RUNS_AFTER_SECONDS="2")
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def _script(server: RunningServer, tmp_path: Path, *args: str) -> Any:
    ran = run_client(server, [SCRIPT, *args], tmp_path, timeout=120)
    assert ran.returncode == 0, f"{args}:\n{ran.stderr[-3000:]}\n{server.log()}"
    return json.loads(ran.stdout.strip().splitlines()[-1])


def _event(server: RunningServer, name: str, run_id: str, timeout: float = 20) -> dict[str, Any]:
    """The event ``name`` about the run, read back through /api/events/filter."""
    body = {
        "filter": {
            "event": {"name": [name]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        },
        "limit": 10,
    }
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{server.api_url}/events/filter", json=body, timeout=10)
        assert response.status_code == 200, response.text
        events = response.json()["events"]
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.3)  # events are persisted after the state is committed
    assert events, f"no {name} event for run {run_id}\n{server.log()}"
    return events[0]  # type: ignore[no-any-return]


def test_unclaimed_deployment_run_turns_late(server: RunningServer, tmp_path: Path) -> None:
    run_id = _script(server, tmp_path, "unattended")["run_id"]

    state = _script(server, tmp_path, "wait", run_id, "Late", "30")

    assert state["state_type"] == "SCHEDULED" and state["state_name"] == "Late", state
    event = _event(server, "prefect.flow-run.Late", run_id)
    assert event["resource"]["prefect.state-name"] == "Late"
    assert event["resource"]["prefect.state-type"] == "SCHEDULED"


def test_pause_never_resumed_ends_failed(server: RunningServer, tmp_path: Path) -> None:
    # The client re-reads the run 1.5 s into the pause and then only every 10 s
    # (its default poll interval), so the server's service fails the run first;
    # the engine's own Failed (FlowPauseTimeout) follows.
    outcome = _script(server, tmp_path, "pause")

    assert outcome["state_type"] == "FAILED", outcome
    messages = outcome["messages"]
    assert any(m.startswith("PAUSED") for m in messages), messages
    assert f"FAILED: {SERVER_PAUSE_MESSAGE}" in messages, messages
    _event(server, "prefect.flow-run.Failed", outcome["run_id"])


def test_suspended_run_nobody_resumes_is_failed_by_the_server(
    server: RunningServer, tmp_path: Path
) -> None:
    suspended = _script(server, tmp_path, "suspend")  # the flow's process has exited
    run_id = suspended["run_id"]
    assert suspended["state_type"] in ("PAUSED", "FAILED"), suspended

    state = _script(server, tmp_path, "wait", run_id, "Failed", "30")

    assert state["state_type"] == "FAILED", state
    assert state["message"] == SERVER_PAUSE_MESSAGE, state
    history = httpx.get(
        f"{server.api_url}/flow_run_states/", params={"flow_run_id": run_id}, timeout=10
    ).json()
    names = [(s["type"], s["name"]) for s in history]
    assert ("PAUSED", "Suspended") in names, names
    assert not any(CLIENT_PAUSE_MESSAGE in (s.get("message") or "") for s in history), history
    event = _event(server, "prefect.flow-run.Failed", run_id)
    assert event["resource"]["prefect.state-message"] == SERVER_PAUSE_MESSAGE
