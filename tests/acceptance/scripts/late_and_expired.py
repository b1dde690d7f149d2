"""Client-side steps of test_late_and_expired.py, run in the prefect==3.9.1 client venv.

Usage:
  late_and_expired.py unattended        -> {"run_id"}: a deployment run due now that no
                                           worker or runner will ever pick up
  late_and_expired.py wait ID NAME SECS -> {"state_type", "state_name", "message"} once
                                           read_flow_run shows state NAME (or at timeout)
  late_and_expired.py pause             -> runs a flow that pauses (timeout 3 s) and is
                                           never resumed: {"run_id", "state_type",
                                           "state_name", "messages"} (the state history)
  late_and_expired.py suspend           -> runs a deployment's flow that suspends itself
                                           (timeout 3 s); this process then exits:
                                           {"run_id", "state_type", "state_name"}
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.runtime import flow_run

PAUSE_SECONDS = 3


@flow
def pauser() -> None:
    print(json.dumps({"run_id": str(flow_run.id)}), flush=True)
    pause_flow_run(timeout=PAUSE_SECONDS)


@flow
def suspender() -> None:
    suspend_flow_run(timeout=PAUSE_SECONDS)


def _deployment_run(flow_name: str, deployment: str):  # type: ignore[no-untyped-def]
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(flow_name)
        deployment_id = client.create_deployment(flow_id=flow_id, name=deployment)
        return client.create_flow_run_from_deployment(deployment_id)


def unattended() -> None:
    run = _deployment_run("late-flow", "nobody-polls")
    print(json.dumps({"run_id": str(run.id)}))


def wait(run_id: str, name: str, seconds: str) -> None:
    deadline = time.monotonic() + float(seconds)
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(run_id)).state
            if (state and state.name == name) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
    print(
        json.dumps(
            {
                "state_type": state.type.value if state else None,
                "state_name": state.name if state else None,
                "message": state.message if state else None,
            }
        )
    )


def pause() -> None:
    final = pauser(return_state=True)
    run_id = final.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        history = client.read_flow_run_states(run_id)
    print(
        json.dumps(
            {
                "run_id": str(run_id),
                "state_type": final.type.value,
                "state_name": final.name,
                "messages": [f"{s.type.value}: {s.message}" for s in history],
            }
        )
    )


def suspend() -> None:
    run = _deployment_run("suspender", "suspends")
    with contextlib.suppress(Pause):  # how the engine ends a process whose run suspended
        run_flow(suspender, flow_run=run)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    print(
        json.dumps(
            {
                "run_id": str(run.id),
                "state_type": state.type.value if state else None,
                "state_name": state.name if state else None,
            }
        )
    )


def main() -> None:
    command, *args = sys.argv[1:]
    commands = {"unattended": unattended, "wait": wait, "pause": pause, "suspend": suspend}
    if command not in commands:
        raise SystemExit(f"unknown command {command}")
    commands[command](*args)


if __name__ == "__main__":
    main()
