"""Register deployments the way `flow.deploy()` / `prefect deploy` do, without a worker.

Usage: deploy_flow.py POOL. Prints one JSON line with the deployment ids.
"""

from __future__ import annotations

import json
import sys

from prefect import flow
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.deployments.runner import RunnerDeployment


@flow(name="dep-flow")
def dep_flow(msg: str = "hi", n: int = 1) -> str:
    return msg * n


def main() -> None:
    pool = sys.argv[1]
    pooled = RunnerDeployment.from_flow(
        dep_flow,
        name="pooled",
        parameters={"msg": "from-deployment"},
        tags=["acc"],
        work_pool_name=pool,
        schedules=[IntervalSchedule(interval=3600)],
    )
    pooled_id = pooled.apply(work_pool_name=pool)
    served = dep_flow.to_deployment(name="served", cron="*/5 * * * *", tags=["served"])
    served_id = served.apply()
    # Applying again is an upsert: same id back.
    again = dep_flow.to_deployment(name="served", cron="*/5 * * * *", tags=["served"]).apply()
    print(json.dumps({"pooled": str(pooled_id), "served": str(served_id), "again": str(again)}))


if __name__ == "__main__":
    main()
