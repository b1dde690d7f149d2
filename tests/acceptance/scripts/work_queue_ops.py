"""Client-side steps of test_work_queues.py, run in the prefect==3.9.1 client venv.

Usage:
  work_queue_ops.py runs POOL QUEUE  -> {"deployment", "scheduled", "running"}: a deployment
                                        in POOL/QUEUE with one run due in 10 minutes and
                                        one forced RUNNING (it holds a slot)
  work_queue_ops.py legacy           -> what the pool-less client calls answer
  work_queue_ops.py branch ID        -> create_deployment_branch of ID, read back
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, DeploymentUpdate
from prefect.client.schemas.objects import BranchingScheduleHandling, DeploymentBranchingOptions
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.states import Running, Scheduled


async def runs(pool: str, queue: str) -> None:
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("queue-ops-flow")
        day = timedelta(days=1)
        tomorrow = datetime.now(UTC) + day
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name="queued",
            work_pool_name=pool,
            work_queue_name=queue,
            # Daily from tomorrow: the scheduler adds nothing to the hour previewed.
            schedules=[
                DeploymentScheduleCreate(
                    schedule=IntervalSchedule(interval=day, anchor_date=tomorrow)
                )
            ],
        )
        later = datetime.now(UTC) + timedelta(minutes=10)
        scheduled = await client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=later)
        )
        running = await client.create_flow_run_from_deployment(deployment_id)
        await client.set_flow_run_state(running.id, Running(), force=True)
    print(
        json.dumps(
            {
                "deployment": str(deployment_id),
                "scheduled": str(scheduled.id),
                "running": str(running.id),
            }
        )
    )


async def legacy() -> None:
    async with get_client() as client:
        created = await client.create_work_queue(name="agent-q", concurrency_limit=2)
        try:
            await client.create_work_queue(name="agent-q")
            duplicate = "created"
        except ObjectAlreadyExists:
            duplicate = "409"
        by_name = await client.read_work_queue_by_name("agent-q")
        pulled = await client.get_runs_in_work_queue(created.id, limit=5)
        health = await client.read_work_queue_status(created.id)
        slots = await client.read_work_queue_concurrency_status(created.id)
        try:
            await client.read_work_queue_by_name("no-such-queue")
            missing = "found"
        except ObjectNotFound:
            missing = "404"
        try:
            await client.read_work_queue_concurrency_status(UUID(int=7))
            missing_slots = "found"
        except ObjectNotFound:
            missing_slots = "404"
    print(
        json.dumps(
            {
                "pool": created.work_pool_name,
                "limit": created.concurrency_limit,
                "active_slots": created.active_slots,
                "duplicate": duplicate,
                "by_name": str(by_name.id) == str(created.id),
                "pulled": len(pulled),
                "healthy": health.healthy,
                "polled": health.last_polled is not None,
                "policy": health.health_check_policy.model_dump(),
                "slots": slots.model_dump(mode="json"),
                "missing": missing,
                "missing_slots": missing_slots,
            }
        )
    )


async def branch(deployment_id: str) -> None:
    async with get_client() as client:
        new_id = await client.create_deployment_branch(
            UUID(deployment_id),
            "feature",
            options=DeploymentBranchingOptions(
                schedule_handling=BranchingScheduleHandling.INACTIVE
            ),
            overrides=DeploymentUpdate(description="branched"),
        )
        copy = await client.read_deployment(new_id)
        try:
            await client.create_deployment_branch(UUID(deployment_id), "feature")
            again = "created"
        except Exception as exc:  # the client maps no status code here
            again = str(getattr(getattr(exc, "response", None), "status_code", exc))
    print(
        json.dumps(
            {
                "id": str(new_id),
                "name": copy.name,
                "description": copy.description,
                "work_queue_name": copy.work_queue_name,
                "schedules_active": [s.active for s in copy.schedules],
                "again": again,
            }
        )
    )


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "runs":
        asyncio.run(runs(*args))
    elif command == "legacy":
        asyncio.run(legacy())
    elif command == "branch":
        asyncio.run(branch(*args))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
