"""The background task-run queue in storage, on SQLite and Postgres, with a fake clock.

Covers enqueue on create, claim order (retries first, then oldest), atomic claims
by concurrent claimers, acknowledgement, release, lease renewal and adoption,
lease expiry (requeue or drop) through the redelivery service, and deletion.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from headrace.events.recorder import TaskRunFold
from headrace.services.task_redelivery import TaskRedelivery
from headrace.settings import Settings
from headrace.storage import tables as t
from headrace.storage import task_queue as store
from headrace.storage import task_runs
from headrace.storage.db import Database
from headrace.task_queue import TaskQueue, Waiter
from headrace.types import WireDict

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- helpers ------------------------------------------------------------------


def deferred(name: str = "Scheduled", params: str | None = None) -> WireDict:
    return {
        "type": "SCHEDULED",
        "name": name,
        "state_details": {
            "deferred": True,
            "scheduled_time": T0.isoformat(),
            "task_parameters_id": params or str(uuid.uuid4()),
        },
    }


async def delay(db: Database, key: str = "double-1", now: datetime = T0) -> WireDict:
    """What ``POST /task_runs/`` does for ``task.delay()``."""
    body = {
        "name": key.split("-")[0],
        "task_key": key,
        "dynamic_key": f"{key}-{uuid.uuid4().hex}",
        "state": deferred(),
    }
    async with db.write() as conn:
        run, created = await task_runs.create_task_run(conn, body, now)
    assert created
    return run


async def claim(db: Database, keys: list[str], client: str, now: datetime) -> WireDict | None:
    async with db.write() as conn:
        return await store.claim(conn, keys, client, now, now + LEASE)


async def ack(db: Database, run_id: str, client: str, now: datetime) -> bool:
    async with db.write() as conn:
        return await store.ack(conn, run_id, client, now, now + LEASE)


async def queue_rows(db: Database) -> dict[str, dict[str, Any]]:
    async with db.read() as conn:
        rows = await conn.execute(sa.select(t.task_run_queue))
        return {r.task_run_id: dict(r._mapping) for r in rows}


async def record_state(db: Database, run_id: str, state_type: str, now: datetime) -> None:
    """A task worker's state event, as the task-run recorder stores it."""
    fold = TaskRunFold(run_id, None, fields={"run_count": int(state_type == "RUNNING")})
    fold.states.append(
        {
            "id": str(uuid.uuid4()),
            "type": state_type,
            "name": state_type.title(),
            "timestamp": now,
            "message": None,
            "data": None,
            "state_details": {"task_run_id": run_id},
        }
    )
    async with db.write() as conn:
        await task_runs.record(conn, {run_id: fold}, now)


# -- enqueue ------------------------------------------------------------------


async def test_a_deferred_run_is_queued_and_an_ordinary_one_is_not(db: Database) -> None:
    run = await delay(db)
    async with db.write() as conn:
        plain, _ = await task_runs.create_task_run(
            conn, {"task_key": "k", "dynamic_key": "0", "name": "k"}, T0
        )

    rows = await queue_rows(db)
    assert set(rows) == {run["id"]}
    row = rows[run["id"]]
    assert row["task_key"] == "double-1"
    assert row["priority"] == store.NEW
    assert row["claimed_by"] is None
    assert plain["id"] not in rows


async def test_claim_pushes_the_queued_state_with_its_parameters_id(db: Database) -> None:
    run = await delay(db)
    await record_state(db, run["id"], "PENDING", at(1))  # a worker that died after Pending

    got = await claim(db, ["double-1"], "w-1", at(2))

    assert got is not None
    assert got["id"] == run["id"]
    assert got["state"]["type"] == "SCHEDULED"
    assert (
        got["state"]["state_details"]["task_parameters_id"]
        == (run["state"]["state_details"]["task_parameters_id"])
    )
    assert got["state_type"] == "SCHEDULED"
    row = (await queue_rows(db))[run["id"]]
    assert row["claimed_by"] == "w-1"
    assert row["lease_until"] == at(2) + LEASE
    assert row["deliveries"] == 1


async def test_claim_order_retries_first_then_oldest_and_only_given_keys(db: Database) -> None:
    first = await delay(db, "a-1", at(0))
    second = await delay(db, "a-1", at(1))
    other = await delay(db, "b-1", at(2))
    retry = await delay(db, "a-1", at(3))
    async with db.write() as conn:
        await store.enqueue(conn, retry, deferred("AwaitingRetry"), at(3))

    order = []
    while (got := await claim(db, ["a-1"], "w", at(10))) is not None:
        order.append(got["id"])

    assert order == [retry["id"], first["id"], second["id"]]
    rest = await claim(db, ["a-1", "b-1"], "w", at(10))
    assert rest is not None and rest["id"] == other["id"]


async def test_a_claimed_run_is_not_claimed_again(db: Database) -> None:
    await delay(db)
    assert await claim(db, ["double-1"], "w-1", at(1)) is not None
    assert await claim(db, ["double-1"], "w-2", at(1)) is None
    async with db.read() as conn:
        assert not await store.has_claimable(conn, ["double-1"])


async def test_concurrent_claimers_never_get_the_same_run(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    runs = [await delay(db, "many-1", at(i / 1000)) for i in range(60)]
    # Separate Database objects: separate connections, as separate processes would have.
    others = [Database(Settings(home=tmp_path, database_url=database_url)) for _ in range(3)]

    async def claimer(database: Database, name: str) -> list[str]:
        got = []
        while (run := await claim(database, ["many-1"], name, at(5))) is not None:
            got.append(run["id"])
        return got

    try:
        results = await asyncio.gather(
            claimer(db, "w0"), *(claimer(o, f"w{i + 1}") for i, o in enumerate(others))
        )
    finally:
        for other in others:
            await other.dispose()

    claimed = [run_id for got in results for run_id in got]
    assert sum(1 for got in results if got) >= 2, "the claimers did not overlap"
    assert sorted(claimed) == sorted(r["id"] for r in runs)
    assert len(set(claimed)) == len(claimed)
    rows = await queue_rows(db)
    for name, got in zip(["w0", "w1", "w2", "w3"], results, strict=True):
        assert all(rows[run_id]["claimed_by"] == name for run_id in got)
    assert all(row["deliveries"] == 1 for row in rows.values())


# -- ack, release, renew ------------------------------------------------------


async def test_release_before_ack_requeues_ahead_of_new_runs(db: Database) -> None:
    older = await delay(db, now=at(0))
    pushed = await delay(db, now=at(1))
    got = await claim(db, ["double-1"], "w-1", at(2))
    assert got is not None and got["id"] == older["id"]
    got = await claim(db, ["double-1"], "w-1", at(2))
    assert got is not None and got["id"] == pushed["id"]
    assert await ack(db, older["id"], "w-1", at(3))

    async with db.write() as conn:
        assert await store.release(conn, pushed["id"], "w-1") == "double-1"
        assert await store.release(conn, older["id"], "w-1") is None  # acked: the worker's

    rows = await queue_rows(db)
    assert rows[pushed["id"]]["claimed_by"] is None
    assert rows[pushed["id"]]["priority"] == store.RETRY
    assert rows[older["id"]]["claimed_by"] == "w-1"
    assert rows[older["id"]]["acked_at"] == at(3)
    again = await claim(db, ["double-1"], "w-2", at(4))
    assert again is not None and again["id"] == pushed["id"]
    assert (await queue_rows(db))[pushed["id"]]["deliveries"] == 2


async def test_ack_by_another_holder_is_refused(db: Database) -> None:
    run = await delay(db)
    await claim(db, ["double-1"], "w-1", at(1))
    assert not await ack(db, run["id"], "w-2", at(2))


async def test_renew_extends_held_runs_and_drops_started_ones(db: Database) -> None:
    started = await delay(db, now=at(0))
    waiting = await delay(db, now=at(1))
    in_flight = await delay(db, now=at(2))
    stale = await delay(db, now=at(3))
    for run in (started, waiting, in_flight, stale):
        got = await claim(db, ["double-1"], "w-1", at(5))
        assert got is not None and got["id"] == run["id"]
    await ack(db, started["id"], "w-1", at(6))
    await ack(db, waiting["id"], "w-1", at(6))
    await record_state(db, started["id"], "RUNNING", at(7))

    # A new connection of the same worker adopts what it acknowledged, plus its own
    # in-flight run; an unacknowledged claim left by another connection is not renewed.
    async with db.write() as conn:
        held = await store.renew(conn, "w-1", in_flight["id"], at(20) + LEASE)

    assert held == 2
    rows = await queue_rows(db)
    assert started["id"] not in rows
    assert rows[waiting["id"]]["lease_until"] == at(20) + LEASE
    assert rows[in_flight["id"]]["lease_until"] == at(20) + LEASE
    assert rows[stale["id"]]["lease_until"] == at(5) + LEASE


# -- expiry -------------------------------------------------------------------


async def test_lapsed_claims_are_requeued_unless_the_run_started(db: Database) -> None:
    never_acked = await delay(db, now=at(0))
    acked_pending = await delay(db, now=at(1))
    acked_running = await delay(db, now=at(2))
    deleted = await delay(db, now=at(3))
    fresh = await delay(db, now=at(4))
    for _ in range(4):
        await claim(db, ["double-1"], "gone", at(10))
    for run in (acked_pending, acked_running, deleted):
        await ack(db, run["id"], "gone", at(11))
    await record_state(db, acked_pending["id"], "PENDING", at(12))
    await record_state(db, acked_running["id"], "RUNNING", at(12))
    async with db.write() as conn:  # the run vanished, its (claimed) row did not
        await conn.execute(sa.delete(t.task_runs).where(t.task_runs.c.id == deleted["id"]))
    await claim(db, ["double-1"], "alive", at(30))  # fresh, leased until 60 s
    queue = TaskQueue(db)
    waiter = Waiter(["double-1"])
    queue.wakeups.park(waiter)
    service = TaskRedelivery(db, queue)

    async with db.read() as conn:
        assert await store.next_expiry(conn) == at(10) + LEASE
    assert await service.run_once(at(10) + LEASE - timedelta(microseconds=1)) == at(10) + LEASE
    assert service.requeued == 0
    due = await service.run_once(at(41))

    assert due == at(30) + LEASE
    assert service.requeued == 2
    assert service.dropped == 2
    assert waiter.event.is_set()
    rows = await queue_rows(db)
    assert set(rows) == {never_acked["id"], acked_pending["id"], fresh["id"]}
    for run in (never_acked, acked_pending):
        assert rows[run["id"]]["claimed_by"] is None
        assert rows[run["id"]]["priority"] == store.RETRY
    assert rows[fresh["id"]]["claimed_by"] == "alive"
    redelivered = await claim(db, ["double-1"], "new", at(42))
    assert redelivered is not None and redelivered["id"] == never_acked["id"]


async def test_claim_drops_rows_of_runs_that_moved_on(db: Database) -> None:
    done = await delay(db, now=at(0))
    live = await delay(db, now=at(1))
    await record_state(db, done["id"], "COMPLETED", at(2))

    got = await claim(db, ["double-1"], "w", at(3))

    assert got is not None and got["id"] == live["id"]
    assert done["id"] not in await queue_rows(db)


# -- deletion and re-scheduling ---------------------------------------------------


async def test_delete_task_run_removes_its_queue_row(db: Database) -> None:
    run = await delay(db)
    async with db.write() as conn:
        await task_runs.delete_task_run(conn, run["id"])
    assert await queue_rows(db) == {}


async def test_a_background_run_set_back_to_awaiting_retry_is_requeued_first(
    db: Database,
) -> None:
    retried = await delay(db, now=at(0))
    newer = await delay(db, now=at(1))
    await claim(db, ["double-1"], "w", at(2))
    await ack(db, retried["id"], "w", at(2))
    await record_state(db, retried["id"], "RUNNING", at(3))
    async with db.write() as conn:
        await store.renew(conn, "w", None, at(4) + LEASE)  # the worker started it: row gone
        _decision, written, _run = await task_runs.set_task_run_state(
            conn, retried["id"], deferred("AwaitingRetry"), True, at(5)
        )
    assert written is not None

    got = await claim(db, ["double-1"], "w2", at(6))

    assert got is not None and got["id"] == retried["id"]
    assert got["state"]["name"] == "AwaitingRetry"
    rest = await claim(db, ["double-1"], "w2", at(6))
    assert rest is not None and rest["id"] == newer["id"]
