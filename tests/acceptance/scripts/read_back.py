"""Read a flow run's tree back through the real client; print it as JSON.

Usage: read_back.py FLOW_RUN_ID [EXPECTED_TASK_RUNS]
Waits (up to 20 s) until the flow run's task runs are all recorded and final,
since ordinary task runs reach the server only as events.
"""

import asyncio
import json
import sys
import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentTaskRunId,
    LogFilter,
    LogFilterFlowRunId,
)


def brief_run(run):
    return {
        "id": str(run.id),
        "name": run.name,
        "state_type": run.state.type.value if run.state else None,
        "state_name": run.state.name if run.state else None,
        "run_count": run.run_count,
        "parent_task_run_id": str(getattr(run, "parent_task_run_id", None) or "") or None,
        "flow_run_id": str(getattr(run, "flow_run_id", None) or "") or None,
        "task_key": getattr(run, "task_key", None),
    }


async def main(flow_run_id: str, expected: int) -> None:
    async with get_client() as client:
        run = await client.read_flow_run(flow_run_id)
        deadline = time.monotonic() + 20
        while True:
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]})
            )
            final = [t for t in tasks if t.state and t.state.is_final()]
            if len(final) >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in tasks])
            )
        )
        logs = await client.read_logs(
            log_filter=LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=[run.id] + [c.id for c in children])
            )
        )
        states = await client.read_flow_run_states(flow_run_id)
    print(
        json.dumps(
            {
                "run": brief_run(run),
                "tasks": [brief_run(t) for t in tasks],
                "children": [brief_run(c) for c in children],
                "logs": [
                    {"message": log.message, "flow_run_id": str(log.flow_run_id)} for log in logs
                ],
                "states": [s.name for s in states],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
