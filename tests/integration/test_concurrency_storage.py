"""Storage contract for concurrency limits, leases and deployment concurrency.

Runs on SQLite and Postgres with the ``db`` fixture of the core contract suite.
Times are explicit, so lease expiry and decay are exact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from tests.integration import test_storage_contract as contract
from tests.integration.test_deployments_storage import make_deployment, make_pool, run_for
from tests.integration.test_storage_contract import T0, at, make_flow

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import (
    concurrency_leases,
    concurrency_limits,
    deployments,
    flow_runs,
    work_pools,
)
from headrace.storage import tables as t
from headrace.storage.concurrency_leases import Holder, ZeroLimit
from headrace.storage.db import Database
from headrace.types import WireDict

HOLDER = Holder("task_run", "00000000-0000-4000-8000-000000000001")


async def create(db: Database, name: str = "lim", limit: int = 2, **body: Any) -> WireDict:
    async with db.write() as conn:
        return await concurrency_limits.create_limit(
            conn, {"name": name, "limit": limit, **body}, T0
        )


async def read(db: Database, id_or_name: str, now=T0) -> WireDict:
    async with db.read() as conn:
        return await concurrency_limits.read_limit(conn, id_or_name, now)


async def take(db: Database, names: list[str], slots: int = 1, now=T0, **kw: Any):
    kw.setdefault("lease_seconds", 60.0)
    mode = kw.pop("mode", "concurrency")
    async with db.write() as conn:
        return await concurrency_leases.acquire(conn, names, slots, mode, now, **kw)


async def test_limits_crud_by_id_or_name(db: Database) -> None:
    made = await create(db, "lim", 3, slot_decay_per_second=0.5)
    assert made["active_slots"] == 0 and made["slot_decay_per_second"] == 0.5
    assert await read(db, made["id"]) == await read(db, "lim") == made
    with pytest.raises(AlreadyExists):
        await create(db, "lim")
    await create(db, "another")

    async with db.write() as conn:
        await concurrency_limits.update_limit(conn, "lim", {"limit": 5, "active": False}, at(1))
        await concurrency_limits.update_limit(conn, made["id"], {"name": "renamed"}, at(2))
    with pytest.raises(AlreadyExists):
        async with db.write() as conn:
            await concurrency_limits.update_limit(conn, "renamed", {"name": "another"}, at(3))
    async with db.write() as conn:
        with pytest.raises(NotFound):
            await concurrency_limits.update_limit(conn, "lim", {"limit": 1}, at(3))
    renamed = await read(db, made["id"])
    assert (renamed["name"], renamed["limit"], renamed["active"]) == ("renamed", 5, False)
    assert renamed["updated"] == at(2)

    async with db.read() as conn:
        listed = await concurrency_limits.filter_limits(conn, 10, 0, T0)
        second_page = await concurrency_limits.filter_limits(conn, 1, 1, T0)
    assert [x["name"] for x in listed] == ["another", "renamed"]
    assert [x["name"] for x in second_page] == ["renamed"]

    async with db.write() as conn:
        await concurrency_limits.delete_limit(conn, "renamed")
        with pytest.raises(NotFound):
            await concurrency_limits.delete_limit(conn, "renamed")
    with pytest.raises(NotFound):
        await read(db, made["id"])


async def test_leases_hold_slots_all_or_nothing(db: Database) -> None:
    await create(db, "a", 2)
    await create(db, "b", 1)
    first = await take(db, ["a", "b", "unknown"], holder=HOLDER)
    assert first.granted and first.lease_id and first.expires == at(60)
    assert [m["name"] for m in first.limits] == ["a", "b"]
    assert (await read(db, "a"))["active_slots"] == 1

    blocked = await take(db, ["a", "b"])
    assert not blocked.granted and blocked.retry_at == at(60)  # b frees when the lease expires
    assert (await read(db, "a"))["active_slots"] == 1  # nothing taken on a either

    async with db.write() as conn:
        assert await concurrency_leases.release(conn, [first.lease_id]) == 1
        assert await concurrency_leases.release(conn, [first.lease_id]) == 0
    assert (await take(db, ["a", "b"])).granted


async def test_unknown_names_grant_nothing_and_bad_requests_are_refused(db: Database) -> None:
    nothing = await take(db, ["nope"])
    assert nothing.granted and nothing.limits == [] and nothing.lease_id
    await create(db, "flat", 2)
    with pytest.raises(InvalidInput, match="greater than the limit"):
        await take(db, ["flat"], 3)
    with pytest.raises(InvalidInput, match="slot decay"):
        await take(db, ["flat"], mode="rate_limit", lease_seconds=None)


async def test_an_expired_lease_counts_for_nothing_before_its_row_is_gone(db: Database) -> None:
    await create(db, "lim", 1)
    lease = await take(db, ["lim"], lease_seconds=10.0)
    assert (await read(db, "lim", at(9.999)))["active_slots"] == 1
    assert (await read(db, "lim", at(10)))["active_slots"] == 0
    assert not (await take(db, ["lim"], now=at(9))).granted
    assert (await take(db, ["lim"], now=at(10))).granted

    async with db.write() as conn:
        assert not await concurrency_leases.renew(conn, lease.lease_id, 30, at(11))
        expired = await concurrency_leases.expire(conn, at(11), 100)
    assert [(e.id, e.limit_names, e.slots) for e in expired] == [(lease.lease_id, ["lim"], 1)]
    async with db.read() as conn:
        assert await concurrency_leases.earliest_expiry(conn) == at(70)


async def test_renewal_moves_the_expiry(db: Database) -> None:
    await create(db, "lim", 1)
    lease = await take(db, ["lim"], lease_seconds=10.0)
    async with db.write() as conn:
        assert await concurrency_leases.renew(conn, lease.lease_id, 30, at(5))
    assert (await read(db, "lim", at(34)))["active_slots"] == 1
    assert (await read(db, "lim", at(35)))["active_slots"] == 0
    async with db.write() as conn:
        assert await concurrency_leases.expire(conn, at(20), 100) == []


async def test_rate_limits_decay_and_say_when_to_retry(db: Database) -> None:
    await create(db, "rl", 2, slot_decay_per_second=2.0)
    for _ in range(2):
        assert (await take(db, ["rl"], mode="rate_limit", lease_seconds=None)).granted
    refused = await take(db, ["rl"], mode="rate_limit", lease_seconds=None)
    assert not refused.granted and refused.retry_at == at(0.5)
    assert (await read(db, "rl", at(0.25)))["active_slots"] == 2
    assert (await read(db, "rl", at(0.5)))["active_slots"] == 1
    assert (await take(db, ["rl"], now=at(0.5), mode="rate_limit", lease_seconds=None)).granted
    assert (await read(db, "rl", at(60)))["active_slots"] == 0


async def test_unleased_concurrency_slots_wait_for_decrement(db: Database) -> None:
    await create(db, "lim", 1)
    assert (await take(db, ["lim"], lease_seconds=None)).granted
    assert (await read(db, "lim", at(3600)))["active_slots"] == 1
    async with db.write() as conn:
        released = await concurrency_leases.release_unleased(conn, ["lim", "x"], 1, at(1))
    assert [r["name"] for r in released] == ["lim"]
    assert (await read(db, "lim", at(1)))["active_slots"] == 0


async def test_setting_active_slots_and_decay_keeps_leases(db: Database) -> None:
    await create(db, "lim", 5, active_slots=3)
    await take(db, ["lim"], 2)
    assert (await read(db, "lim"))["active_slots"] == 5
    async with db.write() as conn:
        await concurrency_limits.update_limit(conn, "lim", {"active_slots": 0}, T0)
    assert (await read(db, "lim"))["active_slots"] == 2  # the lease keeps its slots
    async with db.write() as conn:
        await concurrency_limits.update_limit(
            conn, "lim", {"active_slots": 4, "slot_decay_per_second": 1.0}, T0
        )
    assert (await read(db, "lim", at(1)))["active_slots"] == 3


async def test_concurrent_grants_never_exceed_the_limit(db: Database) -> None:
    await create(db, "lim", 3)

    async def one() -> bool:
        return (await take(db, ["lim"])).granted

    results = await asyncio.gather(*(one() for _ in range(12)))
    assert sum(results) == 3
    assert (await read(db, "lim"))["active_slots"] == 3


# -- v1 tag limits --------------------------------------------------------------------


async def test_tag_limits_are_the_v2_limits_named_tag(db: Database) -> None:
    async with db.write() as conn:
        made, created = await concurrency_limits.upsert_tag_limit(conn, "db", 1, T0)
        again, created_again = await concurrency_limits.upsert_tag_limit(conn, "db", 2, at(1))
    assert (created, created_again) == (True, False)
    assert again["id"] == made["id"] and again["concurrency_limit"] == 2
    v2 = await read(db, "tag:db")
    assert v2["id"] == made["id"] and v2["limit"] == 2

    run_id = HOLDER.id
    async with db.write() as conn:
        grant = await concurrency_leases.acquire_for_tags(conn, ["db", "other"], run_id, T0)
    assert grant.granted and grant.limits == [{"id": made["id"], "name": "db", "limit": 2}]
    async with db.read() as conn:
        seen = await concurrency_limits.read_tag_limit(conn, "db", at(10**6))
        by_id = await concurrency_limits.read_tag_limit_by_id(conn, made["id"], T0)
        listed = await concurrency_limits.filter_tag_limits(conn, 10, 0, T0)
    assert seen["active_slots"] == [run_id] and by_id["tag"] == "db"
    assert [x["tag"] for x in listed] == ["db"]

    async with db.write() as conn:
        released = await concurrency_leases.release_for_tags(conn, ["db"], run_id)
    assert released[0]["name"] == "tag:db"
    assert (await read(db, "tag:db"))["active_slots"] == 0


async def test_tag_limit_reset_zero_and_delete(db: Database) -> None:
    runs = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(3)]
    async with db.write() as conn:
        made, _ = await concurrency_limits.upsert_tag_limit(conn, "db", 2, T0)
        await concurrency_leases.acquire_for_tags(conn, ["db"], runs[0], T0)
        await concurrency_leases.reset_tag(conn, "db", runs[1:], T0)
        with pytest.raises(NotFound):
            await concurrency_leases.reset_tag(conn, "nope", [], T0)
    async with db.read() as conn:
        assert (await concurrency_limits.read_tag_limit(conn, "db", T0))["active_slots"] == runs[1:]

    async with db.write() as conn:
        await concurrency_limits.upsert_tag_limit(conn, "zero", 0, T0)
        with pytest.raises(ZeroLimit, match='tag "zero" is 0'):
            await concurrency_leases.acquire_for_tags(conn, ["zero"], runs[0], T0)
    async with db.write() as conn:
        await concurrency_limits.delete_tag_limit(conn, "db", None)
        with pytest.raises(NotFound):
            await concurrency_limits.delete_tag_limit(conn, None, made["id"])
    assert await contract.count_rows(db, t.concurrency_lease_limits) == 0
    async with db.read() as conn:
        with pytest.raises(NotFound):
            await concurrency_limits.read_tag_limit(conn, "db", T0)


# -- deployment concurrency -------------------------------------------------------------


async def limited(db: Database, flow_id: str, **body: Any) -> tuple[WireDict, bool]:
    """A deployment whose runs take no parameters (no schema to enforce)."""
    return await make_deployment(db, flow_id, enforce_parameter_schema=False, **body)


async def pend(db: Database, run_id: str, now=T0) -> flow_runs.Transition:
    async with db.write() as conn:
        return await flow_runs.set_flow_run_state(
            conn, run_id, {"type": "PENDING", "name": "Pending"}, False, now
        )


async def propose(db: Database, run_id: str, type_: str, now=T0, force=False):
    async with db.write() as conn:
        return await flow_runs.set_flow_run_state(conn, run_id, {"type": type_}, force, now)


async def test_deployment_limit_follows_the_deployment(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await limited(db, flow["id"], concurrency_limit=2)
    limit = dep["global_concurrency_limit"]
    assert dep["concurrency_limit"] is None
    assert (limit["name"], limit["limit"], limit["active_slots"]) == (
        f"deployment:{dep['id']}",
        2,
        0,
    )
    again, _ = await limited(db, flow["id"], concurrency_limit=3)
    assert again["global_concurrency_limit"]["id"] == limit["id"]
    assert again["global_concurrency_limit"]["limit"] == 3
    async with db.write() as conn:
        await deployments.update_deployment(conn, dep["id"], {"concurrency_limit": None}, T0)
        assert (await deployments.read_deployment(conn, dep["id"], T0))[
            "global_concurrency_limit"
        ] is None
        await deployments.update_deployment(conn, dep["id"], {"concurrency_limit": 1}, T0)
        await deployments.delete_deployment(conn, dep["id"])
    assert await contract.count_rows(db, t.concurrency_limits) == 0


async def test_deployment_runs_take_slots_at_pending_and_give_them_back(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await limited(db, flow["id"], concurrency_limit=1)
    first, second = (await run_for(db, dep["id"]))["id"], (await run_for(db, dep["id"]))["id"]

    took = await pend(db, first)
    lease_id = took.written["state_details"]["deployment_concurrency_lease_id"]
    assert took.decision.status.value == "ACCEPT" and lease_id

    turned_away = await pend(db, second, at(1))
    assert turned_away.decision.status.value == "REJECT"
    assert turned_away.written["name"] == "AwaitingConcurrencySlot"
    assert turned_away.run["next_scheduled_start_time"] == at(6)

    running = await propose(db, first, "RUNNING", at(2))
    assert running.written["state_details"]["deployment_concurrency_lease_id"] == lease_id
    async with db.read() as conn:  # renewed at RUNNING for the grace period
        found = await conn.execute(sa.select(t.concurrency_leases.c.expires))
        assert found.scalar_one() == at(302)

    await propose(db, first, "COMPLETED", at(3))
    assert await contract.count_rows(db, t.concurrency_leases) == 0
    assert (await pend(db, second, at(7))).decision.status.value == "ACCEPT"


async def test_cancel_new_cancels_the_run_that_finds_no_slot(db: Database) -> None:
    flow = await make_flow(db)
    options = {"collision_strategy": "CANCEL_NEW"}
    dep, _ = await limited(db, flow["id"], concurrency_limit=1, concurrency_options=options)
    first, second = (await run_for(db, dep["id"]))["id"], (await run_for(db, dep["id"]))["id"]
    await pend(db, first)
    cancelled = await pend(db, second)
    assert cancelled.written["type"] == "CANCELLED"
    assert cancelled.written["message"] == "Deployment concurrency limit reached."


async def test_a_crashed_run_gives_its_slot_back_and_an_expired_one_frees_it(
    db: Database,
) -> None:
    flow = await make_flow(db)
    options = {"collision_strategy": "ENQUEUE", "grace_period_seconds": 60}
    dep, _ = await limited(db, flow["id"], concurrency_limit=1, concurrency_options=options)
    runs = [(await run_for(db, dep["id"]))["id"] for _ in range(3)]
    await pend(db, runs[0])
    await propose(db, runs[0], "RUNNING")
    await propose(db, runs[0], "CRASHED", at(1), force=True)
    await pend(db, runs[1], at(2))  # its worker dies before the run starts
    assert (await pend(db, runs[2], at(61))).written["name"] == "AwaitingConcurrencySlot"
    assert (await pend(db, runs[2], at(62))).decision.status.value == "ACCEPT"


async def test_polls_offer_no_more_runs_than_free_slots(db: Database) -> None:
    flow = await make_flow(db)
    await make_pool(db)
    dep, _ = await limited(db, flow["id"], concurrency_limit=1, work_pool_name="p1")
    runs = [(await run_for(db, dep["id"], at(-10 + i)))["id"] for i in range(3)]

    async def offered() -> tuple[list[str], list[str]]:
        async with db.write() as conn:
            by_runner = await deployments.get_scheduled_flow_runs(
                conn, [dep["id"]], at(1), None, T0
            )
            by_worker = await work_pools.get_scheduled_flow_runs(
                conn, "p1", None, at(1), None, None, T0
            )
        return [r["id"] for r in by_runner], [r["flow_run"]["id"] for r in by_worker]

    assert await offered() == ([runs[0]], [runs[0]])
    await pend(db, runs[0])
    assert await offered() == ([], [])
    await propose(db, runs[0], "RUNNING")
    await propose(db, runs[0], "COMPLETED")
    assert await offered() == ([runs[1]], [runs[1]])

    # CANCEL_NEW runs are offered so that PENDING cancels them.
    async with db.write() as conn:
        change = {"concurrency_options": {"collision_strategy": "CANCEL_NEW"}}
        await deployments.update_deployment(conn, dep["id"], change, T0)
    await pend(db, runs[1])
    assert await offered() == ([runs[2]], [runs[2]])


async def test_a_lease_id_that_is_no_uuid_is_no_lease(db: Database) -> None:
    flow = await make_flow(db)
    dep, _ = await limited(db, flow["id"], concurrency_limit=1)
    run_id = (await run_for(db, dep["id"]))["id"]
    garbage = {"deployment_concurrency_lease_id": "not-a-uuid"}
    async with db.write() as conn:
        await flow_runs.set_flow_run_state(
            conn, run_id, {"type": "PENDING", "state_details": garbage}, True, T0
        )
        running = await flow_runs.set_flow_run_state(conn, run_id, {"type": "RUNNING"}, False, T0)
        lease_id = running.written["state_details"]["deployment_concurrency_lease_id"]
        assert lease_id != "not-a-uuid"  # a real slot was taken instead
        await flow_runs.set_flow_run_state(conn, run_id, {"type": "COMPLETED"}, False, at(1))
    assert await contract.count_rows(db, t.concurrency_leases) == 0
