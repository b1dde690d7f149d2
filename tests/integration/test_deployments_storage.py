"""Storage contract for deployments, schedules, work pools, queues and workers.

Runs on SQLite and Postgres with the ``db`` fixture of the core contract suite.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.integration.test_storage_contract import T0, at, make_flow, set_state

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import deployments, flow_runs, work_pools, work_queues
from headrace.storage.db import Database
from headrace.types import WireDict

CRON = {"cron": "0 * * * *", "timezone": None, "day_or": True}


async def make_pool(db: Database, name: str = "p1", **body: Any) -> WireDict:
    async with db.write() as conn:
        return await work_pools.create_pool(conn, {"name": name, "type": "process", **body}, T0)


async def make_deployment(db: Database, flow_id: str, **body: Any) -> tuple[WireDict, bool]:
    async with db.write() as conn:
        return await deployments.upsert_deployment(
            conn, {"name": "dep", "flow_id": flow_id, **body}, T0
        )


async def run_for(db: Database, deployment_id: str, now=T0, **request: Any) -> WireDict:
    async with db.write() as conn:
        body = await deployments.flow_run_body(conn, deployment_id, request, now)
        run, _ = await flow_runs.create_flow_run(conn, body, now)
    return run


async def test_pool_gets_a_default_queue_and_unique_name(db: Database) -> None:
    pool = await make_pool(db)
    assert pool["status"] == "NOT_READY" and pool["active_slots"] is None
    async with db.read() as conn:
        queues = await work_queues.filter_queues(conn, "p1", {}, None, None, T0)
    assert [(q["name"], q["priority"], q["id"]) for q in queues] == [
        ("default", 1, pool["default_queue_id"])
    ]
    with pytest.raises(AlreadyExists):
        await make_pool(db)
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await work_pools.read_pool(conn, "nope", T0)


async def test_queues_priorities_duplicates_and_default_protection(db: Database) -> None:
    pool = await make_pool(db)
    async with db.write() as conn:
        second = await work_queues.create_queue(conn, "p1", {"name": "second"}, T0)
    assert second["priority"] == 2 and second["work_pool_name"] == "p1"
    async with db.write() as conn:
        with pytest.raises(AlreadyExists):
            await work_queues.create_queue(conn, "p1", {"name": "second"}, T0)
    async with db.write() as conn:
        with pytest.raises(InvalidInput):
            await work_queues.delete_queue(conn, pool["default_queue_id"])
    async with db.write() as conn:
        await work_queues.update_queue(conn, second["id"], {"is_paused": True}, T0)
        assert (await work_queues.read_queue(conn, second["id"], T0))["status"] == "PAUSED"
        await work_queues.delete_queue(conn, second["id"])
        with pytest.raises(NotFound):
            await work_queues.read_queue(conn, second["id"], T0)


async def test_heartbeat_upserts_worker_and_readies_pool(db: Database) -> None:
    await make_pool(db)
    async with db.write() as conn:
        first = await work_pools.heartbeat(conn, "p1", "w1", 30, T0)
        again = await work_pools.heartbeat(conn, "p1", "w1", 30, at(10))
    assert first == again
    async with db.read() as conn:
        assert (await work_pools.read_pool(conn, "p1", at(20)))["status"] == "READY"
        online = {"workers": {"status": {"any_": ["ONLINE"]}}}
        assert [
            w["name"]
            for w in await work_pools.filter_workers(conn, "p1", online, None, None, at(20))
        ] == ["w1"]
        # three missed heartbeats: offline, and the pool is no longer ready
        late = at(10 + 91)
        assert await work_pools.filter_workers(conn, "p1", online, None, None, late) == []
        assert (await work_pools.read_pool(conn, "p1", late))["status"] == "NOT_READY"


async def test_deployment_upsert_resolves_default_queue_and_keeps_id(db: Database) -> None:
    flow = await make_flow(db)
    pool = await make_pool(db)
    dep, created = await make_deployment(
        db, flow["id"], work_pool_name="p1", tags=["a"], schedules=[{"schedule": CRON}]
    )
    assert created
    assert dep["work_queue_id"] == pool["default_queue_id"]
    assert dep["work_queue_name"] == "default"
    assert dep["labels"] == {"prefect.flow.id": flow["id"]}
    assert dep["status"] == "NOT_READY" and dep["pull_steps"] == []
    assert [s["schedule"] for s in dep["schedules"]] == [CRON]
    again, created = await make_deployment(db, flow["id"], work_pool_name="p1", tags=["b"])
    assert not created and again["id"] == dep["id"]
    assert again["tags"] == ["b"] and again["schedules"] == []
    with pytest.raises(NotFound):
        await make_deployment(db, flow["id"], name="other", work_pool_name="missing")
    async with db.read() as conn:
        by_name = await deployments.read_deployment_by_name(conn, "demo", "dep", T0)
        assert by_name["id"] == dep["id"]
        with pytest.raises(NotFound):
            await deployments.read_deployment_by_name(conn, "demo", "nope", T0)


async def test_deployment_filter_by_name_tags_and_pool(db: Database) -> None:
    flow = await make_flow(db)
    await make_pool(db)
    a, _ = await make_deployment(db, flow["id"], name="a", tags=["x"], work_pool_name="p1")
    b, _ = await make_deployment(db, flow["id"], name="b", tags=["y"])
    async with db.read() as conn:

        async def names(body: WireDict) -> list[str]:
            found = await deployments.filter_deployments(conn, body, None, None, T0)
            return [d["name"] for d in found]

        assert await names({}) == ["a", "b"]
        assert await names({"deployments": {"name": {"any_": ["b"]}}}) == ["b"]
        assert await names({"deployments": {"tags": {"all_": ["x"]}}}) == ["a"]
        assert await names({"work_pools": {"name": {"any_": ["p1"]}}}) == ["a"]
        assert await names({"flows": {"name": {"any_": ["demo"]}}, "sort": "NAME_DESC"}) == [
            "b",
            "a",
        ]
        assert (
            await deployments.count_deployments(conn, {"deployments": {"id": {"any_": [a["id"]]}}})
            == 1
        )
    assert b["work_queue_id"] is None


async def test_create_flow_run_merges_deployment_values(db: Database) -> None:
    flow = await make_flow(db)
    pool = await make_pool(db)
    dep, _ = await make_deployment(
        db,
        flow["id"],
        version="v1",
        work_pool_name="p1",
        parameters={"msg": "dep", "n": 1},
        job_variables={"env": {"A": "1"}},
        tags=["t1"],
    )
    run = await run_for(db, dep["id"], parameters={"n": 3}, tags=["t2"])
    assert run["state_type"] == "SCHEDULED" and run["state_name"] == "Scheduled"
    assert run["next_scheduled_start_time"] == T0
    assert run["parameters"] == {"msg": "dep", "n": 3}
    assert run["tags"] == ["t1", "t2"]
    assert run["job_variables"] == {"env": {"A": "1"}}
    assert run["deployment_id"] == dep["id"] and run["deployment_version"] == "v1"
    assert run["work_pool_id"] == pool["id"] and run["work_queue_id"] == pool["default_queue_id"]
    assert run["labels"]["prefect.deployment.id"] == dep["id"]
    # a named queue that does not exist yet is created in the deployment's pool
    other = await run_for(db, dep["id"], work_queue_name="urgent")
    assert other["work_queue_name"] == "urgent" and other["work_pool_name"] == "p1"
    async with db.read() as conn:
        wire = await flow_runs.filter_flow_runs(
            conn, {"work_pool_queues": {"name": {"any_": ["urgent"]}}}, None, None, T0
        )
        assert [r["id"] for r in wire] == [other["id"]]


async def test_pool_scheduled_runs_honour_pause_limits_and_priority(db: Database) -> None:
    flow = await make_flow(db)
    pool = await make_pool(db)
    async with db.write() as conn:
        urgent = await work_queues.create_queue(conn, "p1", {"name": "urgent", "priority": 1}, T0)
        await work_queues.update_queue(conn, pool["default_queue_id"], {"priority": 2}, T0)
    dep, _ = await make_deployment(db, flow["id"], work_pool_name="p1")
    slow = await run_for(
        db,
        dep["id"],
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": T0.isoformat()}},
    )
    fast = await run_for(
        db,
        dep["id"],
        work_queue_name="urgent",
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": at(5).isoformat()}},
    )
    await run_for(
        db,
        dep["id"],
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": at(3600).isoformat()}},
    )

    async def poll(names: list[str] | None = None, now=at(10)) -> list[str]:
        async with db.write() as conn:
            found = await work_pools.get_scheduled_flow_runs(
                conn, "p1", names, at(60), None, None, now
            )
        return [r["flow_run"]["id"] for r in found]

    assert await poll() == [fast["id"], slow["id"]], "priority first, then due time"
    assert await poll(["default"]) == [slow["id"]]
    async with db.read() as conn:
        assert (await work_queues.read_queue(conn, urgent["id"], at(20)))["status"] == "READY"
        assert (await deployments.read_deployment(conn, dep["id"], at(20)))["status"] == "READY"
        assert (await deployments.read_deployment(conn, dep["id"], at(200)))[
            "status"
        ] == "NOT_READY"

    async with db.write() as conn:
        await work_queues.update_queue(conn, urgent["id"], {"concurrency_limit": 0}, T0)
    assert await poll() == [slow["id"]]
    async with db.write() as conn:
        await work_pools.update_pool(conn, "p1", {"concurrency_limit": 1}, T0)
    await set_state(db, slow["id"], "PENDING", at(11))
    assert await poll() == [], "the pool's only slot is held by a PENDING run"
    async with db.write() as conn:
        await work_pools.update_pool(conn, "p1", {"concurrency_limit": None, "is_paused": True}, T0)
    assert await poll() == []
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await work_pools.get_scheduled_flow_runs(conn, "p1", ["nope"], None, None, None, T0)


async def test_deployment_scheduled_runs_and_last_polled(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await make_deployment(db, flow["id"])
    due = await run_for(db, dep["id"])
    await run_for(
        db,
        dep["id"],
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": at(3600).isoformat()}},
    )
    async with db.write() as conn:
        found = await deployments.get_scheduled_flow_runs(conn, [dep["id"]], at(60), None, at(1))
    assert [r["id"] for r in found] == [due["id"]]
    async with db.read() as conn:
        read = await deployments.read_deployment(conn, dep["id"], at(2))
    assert read["last_polled"] == at(1) and read["status"] == "READY"


async def test_schedules_crud_and_cursor_reset(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await make_deployment(db, flow["id"])
    interval = {"interval": 3600.0, "anchor_date": "2026-11-25T12:00:00.123456Z", "timezone": "UTC"}
    async with db.write() as conn:
        made = await deployments.create_schedules(
            conn, dep["id"], [{"schedule": interval, "slug": "hourly"}, {"schedule": CRON}], T0
        )
    assert [s["active"] for s in made] == [True, True]
    with pytest.raises(AlreadyExists):
        async with db.write() as conn:
            await deployments.create_schedules(
                conn, dep["id"], [{"schedule": CRON, "slug": "hourly"}], T0
            )
    auto = await run_for(db, dep["id"])
    async with db.write() as conn:
        await conn.execute(
            flow_runs.t.flow_runs.update()
            .where(flow_runs.t.flow_runs.c.id == auto["id"])
            .values(auto_scheduled=True)
        )
        await conn.execute(
            flow_runs.t.deployment_schedules.update().values(cursor=T0 + timedelta(hours=1))
        )
        await deployments.update_schedule(conn, dep["id"], made[0]["id"], {"active": False}, at(1))
    async with db.read() as conn:
        listed = await deployments.read_schedules(conn, dep["id"])
        rows = (await conn.execute(flow_runs.t.deployment_schedules.select())).all()
        with pytest.raises(NotFound):
            await flow_runs.read_flow_run(conn, auto["id"], T0)
    by_slug = {s["slug"]: s for s in listed}
    assert {slug: s["active"] for slug, s in by_slug.items()} == {"hourly": False, None: True}
    assert by_slug["hourly"]["schedule"] == interval and "cursor" not in by_slug["hourly"]
    assert [r.cursor for r in rows] == [None, None]
    async with db.write() as conn:
        await deployments.delete_schedule(conn, dep["id"], made[1]["id"])
        with pytest.raises(NotFound):
            await deployments.delete_schedule(conn, dep["id"], made[1]["id"])
        assert len(await deployments.read_schedules(conn, dep["id"])) == 1


async def test_pause_and_delete_deployment(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await make_deployment(db, flow["id"], schedules=[{"schedule": CRON}])
    manual = await run_for(db, dep["id"])
    async with db.write() as conn:
        await deployments.update_deployment(conn, dep["id"], {"paused": True}, T0)
        assert (await deployments.read_deployment(conn, dep["id"], T0))["paused"] is True
        await deployments.delete_deployment(conn, dep["id"])
        with pytest.raises(NotFound):
            await deployments.read_deployment(conn, dep["id"], T0)
        with pytest.raises(NotFound):
            await flow_runs.read_flow_run(conn, manual["id"], T0)
        with pytest.raises(NotFound):
            await deployments.read_schedules(conn, dep["id"])


async def test_delete_pool_removes_queues_and_workers(db: Database) -> None:
    flow = await make_flow(db)
    await make_pool(db)
    dep, _ = await make_deployment(db, flow["id"], work_pool_name="p1")
    async with db.write() as conn:
        await work_pools.heartbeat(conn, "p1", "w1", None, T0)
        await work_pools.delete_pool(conn, "p1")
        assert await work_pools.filter_pools(conn, {}, None, None, T0) == []
        assert await work_queues.filter_queues(conn, None, {}, None, None, T0) == []
        assert (await deployments.read_deployment(conn, dep["id"], T0))["work_queue_id"] is None
        with pytest.raises(NotFound):
            await work_pools.delete_pool(conn, "p1")
