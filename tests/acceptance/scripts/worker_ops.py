"""Client-side steps of test_worker.py, run in the prefect==3.9.1 client venv.

Usage:
  worker_ops.py deploy POOL SRC_DIR   -> {"greet": id, "sleeper": id, "parent": id}
  worker_ops.py run NAME PARAMS_JSON TIMEOUT
                                       -> {"id", "state_type", "state_name", "parameters"}
  worker_ops.py workers POOL           -> [{"name", "status"}]  (read_workers_for_work_pool)
"""

from __future__ import annotations

import asyncio
import json
import sys

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

ENTRYPOINTS = {
    "greet": "worker_flows.py:greet",
    "sleeper": "worker_flows.py:sleeper",
    "parent": "worker_flows.py:parent",
}


def deploy(pool: str, source: str) -> None:
    ids = {}
    for name, entrypoint in ENTRYPOINTS.items():
        loaded = flow.from_source(source=source, entrypoint=entrypoint)
        ids[name] = str(loaded.deploy(name="d", work_pool_name=pool, print_next_steps=False))
    print(json.dumps(ids))


def run(name: str, parameters: str, timeout: str) -> None:
    flow_run = run_deployment(
        name, parameters=json.loads(parameters), timeout=float(timeout), poll_interval=1
    )
    state = flow_run.state
    print(
        json.dumps(
            {
                "id": str(flow_run.id),
                "state_type": state.type.value if state else None,
                "state_name": state.name if state else None,
                "parameters": flow_run.parameters,
            }
        )
    )


async def workers(pool: str) -> None:
    async with get_client() as client:
        found = await client.read_workers_for_work_pool(pool)
    print(json.dumps([{"name": w.name, "status": str(w.status.value)} for w in found]))


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "deploy":
        deploy(*args)
    elif command == "run":
        run(*args)
    elif command == "workers":
        asyncio.run(workers(*args))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
