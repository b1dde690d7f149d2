"""Storage contract for pool-less queues, queue status views and deployment branches.

Runs on SQLite and Postgres with the ``db`` fixture of the core contract suite.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.integration.test_storage_contract import T0, at, make_flow, set_state

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.services.late_runs import late_state
from headrace.storage import (
    deployment_branches,
    deployments,
    flow_runs,
    queue_status,
    work_pools,
    work_queues,
)
from headrace.storage.db import Database
from headrace.types import WireDict

MISSING = "00000000-0000-4000-8000-000000000000"
CRON = {"cron": "0 * * * *", "timezone": None, "day_or": True}


async def make_deployment(db: Database, **body: Any) -> WireDict:
    flow = await make_flow(db)
    async with db.write() as conn:
        found, _ = await deployments.upsert_deployment(
            conn,
            {"name": "dep", "flow_id": flow["id"], "enforce_parameter_schema": False, **body},
            T0,
        )
    return found


async def run_for(db: Database, deployment_id: str, **request: Any) -> WireDict:
    async with db.write() as conn:
        body = await deployments.flow_run_body(conn, deployment_id, request, T0)
        run, _ = await flow_runs.create_flow_run(conn, body, T0)
    return run


async def test_poolless_queues_live_in_the_default_agent_pool(db: Database) -> None:
    async with db.write() as conn:
        default = await work_queues.create_poolless_queue(conn, {"name": "default"}, T0)
        first = await work_queues.create_poolless_queue(
            conn, {"name": "agents", "concurrency_limit": 2}, T0
        )
    assert default["name"] == "default" and default["priority"] == 1
    assert first["work_pool_name"] == work_queues.DEFAULT_AGENT_POOL
    assert first["active_slots"] == 0 and first["status"] == "NOT_READY"
    async with db.read() as conn:
        pool = await work_pools.read_pool(conn, work_queues.DEFAULT_AGENT_POOL, T0)
        assert pool["type"] == "prefect-agent" and pool["default_queue_id"] == default["id"]
        found = await work_queues.read_poolless_queue_by_name(conn, "agents", T0)
        assert found["id"] == first["id"]
        with pytest.raises(NotFound):
            await work_queues.read_poolless_queue_by_name(conn, "nope", T0)
    for name in ("agents", "default"):  # the pool exists now: both names are taken
        async with db.write() as conn:
            with pytest.raises(AlreadyExists):
                await work_queues.create_poolless_queue(conn, {"name": name}, T0)
    async with db.write() as conn:
        again = await work_queues.ensure_poolless_queue(conn, "agents", T0)
        made = await work_queues.ensure_poolless_queue(conn, "more", T0)
    assert again["id"] == first["id"] and made["work_pool_name"] == work_queues.DEFAULT_AGENT_POOL


async def test_match_by_name_prefixes(db: Database) -> None:
    async with db.write() as conn:
        for name in ("one_a", "one%b", "ONE_c", "onex", "two"):
            await work_queues.create_poolless_queue(conn, {"name": name}, T0)

    async def matched(prefixes: Any) -> list[str]:
        body = {"work_queues": {"name": {"startswith_": prefixes}}}
        async with db.read() as conn:
            found = await work_queues.filter_queues(conn, None, body, None, None, T0)
        return sorted(q["name"] for q in found)

    assert await matched(["one_"]) == ["ONE_c", "one_a"]  # `_` is no wildcard
    assert await matched(["one%", "tw"]) == ["one%b", "two"]
    assert await matched("onex") == ["onex"]
    assert await matched([]) == []
    with pytest.raises(InvalidInput):
        await matched([1])


async def test_lookup_by_name_without_an_agent_pool_finds_any_pool(db: Database) -> None:
    async with db.write() as conn:
        pool = await work_pools.create_pool(conn, {"name": "p1", "type": "process"}, T0)
    async with db.read() as conn:
        found = await work_queues.read_poolless_queue_by_name(conn, "default", T0)
    assert found["id"] == pool["default_queue_id"]


async def test_queue_only_deployment_runs_are_polled_through_its_queue(db: Database) -> None:
    deployment = await make_deployment(db, work_queue_name="wq")
    assert deployment["work_queue_name"] == "wq" and deployment["work_pool_name"] is None
    async with db.read() as conn:
        queue = await work_queues.read_poolless_queue_by_name(conn, "wq", T0)
    assert deployment["work_queue_id"] == queue["id"]
    runs = [await run_for(db, deployment["id"]) for _ in range(3)]
    assert {r["work_queue_id"] for r in runs} == {queue["id"]}

    async with db.write() as conn:
        pulled = await work_queues.runs_in_queue(conn, queue["id"], at(1), 2, at(1))
    assert len(pulled) == 2 and {r["id"] for r in pulled} < {r["id"] for r in runs}
    async with db.read() as conn:
        polled = await work_queues.read_queue(conn, queue["id"], at(1))
    assert polled["status"] == "READY" and polled["last_polled"] == at(1)

    async with db.write() as conn:
        assert await work_queues.runs_in_queue(conn, queue["id"], T0 - timedelta(1), None, T0) == []
        await work_queues.update_queue(conn, queue["id"], {"is_paused": True}, T0)
        assert await work_queues.runs_in_queue(conn, queue["id"], at(1), None, at(1)) == []
        with pytest.raises(NotFound):
            await work_queues.runs_in_queue(conn, MISSING, None, None, T0)


async def test_queue_health_follows_the_reference_policy(db: Database) -> None:
    deployment = await make_deployment(db, work_queue_name="wq")
    queue_id = deployment["work_queue_id"]
    async with db.read() as conn:
        never = await queue_status.queue_health(conn, queue_id, T0)
        with pytest.raises(NotFound):
            await queue_status.queue_health(conn, MISSING, T0)
    assert never == {
        "healthy": False,
        "late_runs_count": 0,
        "last_polled": None,
        "health_check_policy": {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60},
    }
    async with db.write() as conn:
        await work_queues.mark_polled(conn, [queue_id], T0)
    async with db.read() as conn:
        assert (await queue_status.queue_health(conn, queue_id, at(60)))["healthy"] is True
        assert (await queue_status.queue_health(conn, queue_id, at(61)))["healthy"] is False

    run = await run_for(db, deployment["id"])
    async with db.write() as conn:
        await flow_runs.set_flow_run_state(
            conn, run["id"], late_state(run["next_scheduled_start_time"]), False, at(20)
        )
    async with db.read() as conn:
        late = await queue_status.queue_health(conn, queue_id, at(30))
    assert late["late_runs_count"] == 1 and late["healthy"] is False


async def test_concurrency_status_pages_queues_and_runs(db: Database) -> None:
    async with db.write() as conn:
        await work_pools.create_pool(
            conn, {"name": "p1", "type": "process", "concurrency_limit": 5}, T0
        )
        await work_queues.create_queue(conn, "p1", {"name": "busy", "concurrency_limit": 3}, T0)
    deployment = await make_deployment(db, work_pool_name="p1", work_queue_name="busy")
    runs = [await run_for(db, deployment["id"]) for _ in range(3)]
    await set_state(db, runs[0]["id"], "RUNNING", at(1), force=True)
    await set_state(db, runs[1]["id"], "PENDING", at(2), force=True)
    await set_state(db, runs[2]["id"], "COMPLETED", at(3), force=True)  # holds no slot
    queue_id = deployment["work_queue_id"]

    async with db.read() as conn:
        first = await queue_status.queue_concurrency(conn, queue_id, 1, 1, at(11))
        second = await queue_status.queue_concurrency(conn, queue_id, 2, 1, at(11))
        pool = await queue_status.pool_concurrency(conn, "p1", 1, 200, 1, at(11))
        paged = await queue_status.pool_concurrency(conn, "p1", 2, 1, 10, at(11))
        with pytest.raises(NotFound):
            await queue_status.queue_concurrency(conn, MISSING, 1, 10, T0)
        with pytest.raises(NotFound):
            await queue_status.pool_concurrency(conn, "nope", 1, 10, 10, T0)

    holders = sorted([runs[0]["id"], runs[1]["id"]])
    assert first["active_slots"] == 2 and first["concurrency_limit"] == 3
    assert (first["count"], first["pages"], first["page"], first["limit"]) == (2, 2, 1, 1)
    assert [r["id"] for r in first["flow_runs"] + second["flow_runs"]] == holders
    running = next(r for r in first["flow_runs"] + second["flow_runs"] if r["id"] == runs[0]["id"])
    assert running["state_type"] == "RUNNING" and running["time_in_current_state"] == 10.0

    assert pool["active_slots"] == 2 and pool["concurrency_limit"] == 5
    assert (pool["count"], pool["pages"]) == (2, 1)
    by_name = {q["queue_name"]: q for q in pool["queues"]}
    assert by_name["busy"]["flow_run_count"] == 2 and len(by_name["busy"]["flow_runs"]) == 1
    assert by_name["default"]["active_slots"] == 0 and by_name["default"]["flow_runs"] == []
    assert [q["queue_name"] for q in paged["queues"]] == ["busy"]  # priority 2, page 2


async def test_branch_copies_a_deployment(db: Database) -> None:
    source = await make_deployment(
        db,
        work_pool_name=None,
        tags=["t"],
        parameters={"x": 1},
        schedules=[{"schedule": CRON, "active": True, "slug": "hourly"}],
    )
    async with db.write() as conn:
        kept = await deployment_branches.create_branch(conn, source["id"], "keep", "keep", None, T0)
        inactive = await deployment_branches.create_branch(
            conn, source["id"], "off", "inactive", {"description": "b", "tags": ["u"]}, T0
        )
        removed = await deployment_branches.create_branch(
            conn, source["id"], "bare", "remove", None, T0
        )
    assert kept["name"] == "dep:keep" and kept["flow_id"] == source["flow_id"]
    assert kept["parameters"] == {"x": 1} and kept["tags"] == ["t"]
    assert [(s["slug"], s["active"]) for s in kept["schedules"]] == [("hourly", True)]
    assert [s["active"] for s in inactive["schedules"]] == [False]
    assert inactive["description"] == "b" and inactive["tags"] == ["u"]
    assert removed["schedules"] == []
    async with db.read() as conn:
        assert len(await deployments.read_schedules(conn, source["id"])) == 1  # untouched
    async with db.write() as conn:
        with pytest.raises(AlreadyExists):
            await deployment_branches.create_branch(conn, source["id"], "keep", "keep", None, T0)
        with pytest.raises(NotFound):
            await deployment_branches.create_branch(conn, MISSING, "b", "keep", None, T0)
        with pytest.raises(InvalidInput):
            await deployment_branches.create_branch(conn, source["id"], "x" * 255, "keep", None, T0)
