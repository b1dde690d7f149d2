"""Concurrency limits driven by the real client, one scenario per sub-command.

Holders append ``enter <name> <t>`` / ``exit <name> <t>`` lines (``time.time()``)
to a shared file, written from inside the slot, so the test can check overlaps.
Results go to stdout as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from uuid import UUID

from prefect import flow


def record(path: str, what: str, who: str) -> None:
    line = f"{what} {who} {time.time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one small append: atomic across processes
    finally:
        os.close(fd)


def holders_sync(name: str, out: str, count: int, seconds: float, tag: str) -> None:
    from prefect.concurrency.sync import concurrency

    def hold(i: int) -> None:
        with concurrency(name, occupy=1):
            record(out, "enter", f"{tag}{i}")
            time.sleep(seconds)
            record(out, "exit", f"{tag}{i}")

    threads = [threading.Thread(target=hold, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


async def holders_async(name: str, out: str, count: int, seconds: float, tag: str) -> None:
    from prefect.concurrency.asyncio import concurrency

    async def hold(i: int) -> None:
        async with concurrency(name, occupy=1):
            record(out, "enter", f"{tag}{i}")
            await asyncio.sleep(seconds)
            record(out, "exit", f"{tag}{i}")

    await asyncio.gather(*(hold(i) for i in range(count)))


def hold_forever(name: str, lease: float) -> None:
    from prefect.concurrency.sync import concurrency

    with concurrency(name, occupy=1, lease_duration=lease):
        print("HOLDING", flush=True)
        time.sleep(3600)


def wait_enter(name: str, occupy: int, timeout: float) -> None:
    from prefect.concurrency.sync import concurrency

    started = time.time()
    with concurrency(name, occupy=occupy, timeout_seconds=timeout, strict=True):
        entered = time.time()
    print(json.dumps({"started": started, "entered": entered}))


def rate(name: str, count: int) -> None:
    from prefect.concurrency.sync import rate_limit

    moments = []
    for _ in range(count):
        rate_limit(name, occupy=1, strict=True)
        moments.append(time.time())
    print(json.dumps({"moments": moments}))


def tagged_tasks(out: str, count: int) -> None:
    from prefect import flow, task

    @task(tags=["db"])
    def query(i: int) -> int:
        record(out, "enter", f"task{i}")
        time.sleep(0.4)
        record(out, "exit", f"task{i}")
        return i

    @flow
    def tagged() -> list[int]:
        futures = [query.submit(i) for i in range(count)]
        return [f.result() for f in futures]

    print(json.dumps({"results": tagged()}))


@flow
def limited(tag: str = "x") -> str:
    """The deployment's flow: records its 3 s inside in $CONCURRENCY_RECORD."""
    out = os.environ.get("CONCURRENCY_RECORD", os.devnull)
    record(out, "enter", tag)
    time.sleep(3)
    record(out, "exit", tag)
    return tag


def limit_config(strategy: str):  # type: ignore[no-untyped-def]
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    return ConcurrencyLimitConfig(limit=1, collision_strategy=strategy)


def serve_limited(strategy: str) -> None:
    from prefect import serve

    serve(limited.to_deployment(name="limited-dep", concurrency_limit=limit_config(strategy)))


def register_limited(strategy: str) -> None:
    deployment = limited.to_deployment(name="limited-dep", concurrency_limit=limit_config(strategy))
    print(json.dumps({"id": str(deployment.apply())}))


def start_runs(count: int) -> None:
    from prefect.deployments import run_deployment

    ids = [
        str(run_deployment("limited/limited-dep", parameters={"tag": f"r{i}"}, timeout=0).id)
        for i in range(count)
    ]
    print(json.dumps({"ids": ids}))


def states(ids: list[str]) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = [client.read_flow_run(UUID(i)) for i in ids]
    print(
        json.dumps(
            {
                str(r.id): {
                    "type": r.state.type.value,
                    "name": r.state.name,
                    "msg": r.state.message,
                }
                for r in runs
                if r.state is not None
            }
        )
    )


def pending_race() -> None:
    """Two runs of the limited deployment proposed PENDING directly, as two workers would."""
    from prefect.client.orchestration import get_client
    from prefect.states import Pending
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def main() -> dict:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("limited/limited-dep")
            answers = {}
            for i in range(2):
                run = await client.create_flow_run_from_deployment(deployment.id)
                result = await client.set_flow_run_state(run.id, Pending())
                answers[f"run{i}"] = {
                    "status": result.status.value,
                    "type": result.state.type.value if result.state else None,
                    "name": result.state.name if result.state else None,
                    "lease": str(result.state.state_details.deployment_concurrency_lease_id)
                    if result.state
                    else None,
                }
            deployment = await client.read_deployment(deployment.id)
            gcl = deployment.global_concurrency_limit
            answers["limit"] = (
                {"limit": gcl.limit, "active_slots": gcl.active_slots} if gcl else None
            )
            return answers

    print(json.dumps(run_coro_as_sync(main())))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "holders":
        name, out, count, seconds, flavour = args
        if flavour == "sync":
            holders_sync(name, out, int(count), float(seconds), "s")
        else:
            asyncio.run(holders_async(name, out, int(count), float(seconds), "a"))
        print(json.dumps({"done": int(count)}))
    elif command == "hold-forever":
        hold_forever(args[0], float(args[1]))
    elif command == "wait-enter":
        wait_enter(args[0], int(args[1]), float(args[2]))
    elif command == "rate":
        rate(args[0], int(args[1]))
    elif command == "tagged":
        tagged_tasks(args[0], int(args[1]))
    elif command == "serve":
        serve_limited(args[0])
    elif command == "register":
        register_limited(args[0])
    elif command == "start-runs":
        start_runs(int(args[0]))
    elif command == "states":
        states(args)
    elif command == "pending-race":
        pending_race()
    else:
        raise SystemExit(f"unknown command {command}")
