"""Background tasks with the real client: task workers and ``.delay()`` callers.

Runs in the client venv (prefect==3.9.1). Worker and callers must share
``PREFECT_HOME`` (parameters and results live in its local storage).

    background_tasks.py serve LOG [LIMIT]    serve the tasks below until killed
    background_tasks.py delay N              delay double(0..N-1), print the results
    background_tasks.py submit N [slow]      delay double (or slow) (0..N-1), print the run ids
    background_tasks.py results ID...        wait for the runs, print their results
    background_tasks.py flaky FAILS          delay a task failing FAILS times (2 retries)

Each task appends ``<task run id> <pid>`` to the file named by $TASK_LOG, so the
test can check that no run executed twice. Outputs are one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import task
from prefect.context import TaskRunContext
from prefect.futures import PrefectDistributedFuture


def _record(kind: str) -> str:
    run = TaskRunContext.get()
    assert run is not None
    run_id = str(run.task_run.id)
    with open(os.environ["TASK_LOG"], "a") as log:
        log.write(f"{run_id} {os.getpid()} {kind}\n")
    return run_id


@task
def double(x: int) -> int:
    _record("double")
    return 2 * x


@task
def slow(x: int) -> int:
    _record("slow")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
    return 2 * x


@task(retries=2, retry_delay_seconds=0)
def flaky(fails: int) -> str:
    """Fails on its first ``fails`` attempts (counted in a file next to the log)."""
    run_id = _record("flaky")
    attempts = Path(os.environ["TASK_LOG"] + f".{run_id}.attempts")
    count = int(attempts.read_text()) if attempts.exists() else 0
    attempts.write_text(str(count + 1))
    if count < fails:
        raise RuntimeError(f"attempt {count + 1} fails")
    return f"ok after {count + 1} attempts"


def _print(value: Any) -> None:
    print(json.dumps(value), flush=True)


def main(argv: list[str]) -> None:
    command = argv[0]
    if command == "serve":
        from prefect.task_worker import serve

        os.environ["TASK_LOG"] = argv[1]
        limit = int(argv[2]) if len(argv) > 2 else 10
        print(f"serving pid={os.getpid()}", flush=True)
        serve(double, slow, flaky, limit=limit)
    elif command == "delay":
        futures = [double.delay(i) for i in range(int(argv[1]))]
        _print({"results": [f.result(timeout=300) for f in futures]})
    elif command == "submit":
        chosen = slow if argv[2:] == ["slow"] else double
        futures = [chosen.delay(i) for i in range(int(argv[1]))]
        _print({"ids": [str(f.task_run_id) for f in futures]})
    elif command == "results":
        futures = [PrefectDistributedFuture(UUID(i)) for i in argv[1:]]
        _print({"results": [f.result(timeout=300) for f in futures]})
    elif command == "flaky":
        future = flaky.delay(int(argv[1]))
        try:
            _print({"id": str(future.task_run_id), "result": future.result(timeout=120)})
        except Exception as exc:
            state = future.state
            _print({"id": str(future.task_run_id), "error": str(exc), "state": state.type.value})
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
