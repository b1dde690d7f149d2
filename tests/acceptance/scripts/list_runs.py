"""Print the runs of a deployment as JSON: name, state, parameters, auto_scheduled."""

import asyncio
import json
import sys

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound


async def main(name: str) -> None:
    async with get_client() as client:
        runs = await client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            limit=200,
        )
        try:
            deployment = await client.read_deployment_by_name(f"ticker/{name}")
        except ObjectNotFound:
            print(json.dumps({"paused": None, "schedules": [], "runs": []}))
            return
    print(
        json.dumps(
            {
                "paused": deployment.paused,
                "schedules": [str(s.id) for s in deployment.schedules],
                "runs": [
                    {
                        "state": r.state.type.value if r.state else None,
                        "name": r.state.name if r.state else None,
                        "parameters": r.parameters,
                        "auto": r.auto_scheduled,
                    }
                    for r in runs
                ],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
