"""A flow that pauses for typed input; a second process resumes it with a value.

Usage: pause_resume.py flow       -> runs the flow, prints {"run_id", "result"}
       pause_resume.py resume ID  -> waits until ID is paused, resumes it with input
"""

import asyncio
import json
import sys
import time

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run


class Approval(RunInput):
    approver: str
    amount: int


@flow
def needs_approval() -> dict:
    get_run_logger().info("run id %s", flow_run.id)
    print(json.dumps({"run_id": flow_run.id}), flush=True)
    answer = pause_flow_run(wait_for_input=Approval, timeout=60, poll_interval=1)
    return {"approver": answer.approver, "amount": answer.amount}


async def resume(run_id: str) -> None:
    async with get_client() as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = await client.read_flow_run(run_id)
            if run.state and run.state.is_paused():
                break
            await asyncio.sleep(0.3)
        else:
            raise SystemExit("run never paused")
    try:
        await resume_flow_run(run_id, run_input={"approver": "x"})  # no amount: refused
        refused = None
    except RuntimeError as exc:
        refused = str(exc)
    await resume_flow_run(run_id, run_input={"approver": "ada", "amount": 3})
    print(json.dumps({"refused": refused}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "flow":
        print(json.dumps({"result": needs_approval()}), flush=True)
    else:
        asyncio.run(resume(sys.argv[2]))
