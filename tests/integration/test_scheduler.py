"""The scheduler service against real storage (SQLite; the contract suite covers Postgres)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.services.scheduler import Scheduler
from headrace.settings import Settings
from headrace.storage import deployments, flows, migrate
from headrace.storage import tables as t
from headrace.storage.db import Database

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(Settings(home=tmp_path))
    await migrate.upgrade(database)
    yield database
    await database.dispose()


async def _deployment(db: Database, schedule: dict, paused: bool = False) -> str:
    async with db.write() as conn:
        flow, _ = await flows.ensure_flow(conn, "f", [], {})
        dep, _ = await deployments.upsert_deployment(
            conn,
            {
                "name": "d",
                "flow_id": flow["id"],
                "paused": paused,
                "parameters": {"x": 1},
                "schedules": [{"schedule": schedule, "active": True}],
            },
            NOW,
        )
    return str(dep["id"])


async def _scheduled(db: Database) -> list[datetime]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(t.flow_runs.c.next_scheduled_start_time, t.flow_runs.c.auto_scheduled)
            .where(t.flow_runs.c.state_type == "SCHEDULED")
            .order_by(t.flow_runs.c.next_scheduled_start_time)
        )
        found = list(rows)
    assert all(r.auto_scheduled for r in found)
    return [r.next_scheduled_start_time for r in found]


async def test_materialises_the_horizon_and_is_idempotent(db: Database) -> None:
    await _deployment(db, {"interval": 60, "anchor_date": "2026-01-01T00:00:00Z"})
    scheduler = Scheduler(db, horizon=timedelta(minutes=10), min_runs=3)
    due = await scheduler.run_once(NOW)
    times = await _scheduled(db)
    assert times == [NOW + timedelta(minutes=m) for m in range(1, 11)]
    assert due == times[-1] - timedelta(minutes=10)

    # A second pass, or a second scheduler, at the same moment adds nothing.
    await scheduler.run_once(NOW)
    await Scheduler(db, horizon=timedelta(minutes=10)).run_once(NOW)
    assert await _scheduled(db) == times

    # Later, the cursor moves forward from where it stopped: no gaps, no repeats.
    await scheduler.run_once(NOW + timedelta(minutes=5))
    later = await _scheduled(db)
    assert later == [NOW + timedelta(minutes=m) for m in range(1, 16)]


async def test_concurrent_schedulers_never_duplicate(db: Database) -> None:
    await _deployment(db, {"cron": "* * * * *"})
    one, two = (Scheduler(db, horizon=timedelta(minutes=30)) for _ in range(2))
    await asyncio.gather(one.run_once(NOW), two.run_once(NOW))
    times = await _scheduled(db)
    assert len(times) == len(set(times)) == 30


async def test_sparse_schedules_keep_min_runs_ahead(db: Database) -> None:
    await _deployment(db, {"cron": "0 3 * * *", "timezone": "America/New_York"})
    await Scheduler(db, horizon=timedelta(minutes=10), min_runs=3).run_once(NOW)
    times = await _scheduled(db)
    assert len(times) == 3
    assert all(tm.astimezone(UTC).hour == 8 for tm in times)  # 03:00 EST


async def test_paused_deployments_get_no_runs(db: Database) -> None:
    await _deployment(db, {"interval": 60}, paused=True)
    due = await Scheduler(db, horizon=timedelta(minutes=10)).run_once(NOW)
    assert await _scheduled(db) == []
    assert due is None


async def test_refill_tops_up_in_fewer_larger_passes(db: Database) -> None:
    await _deployment(db, {"interval": 60, "anchor_date": "2026-01-01T00:00:00Z"})
    scheduler = Scheduler(db, horizon=timedelta(minutes=10), refill=timedelta(minutes=6))
    due = await scheduler.run_once(NOW)
    assert await _scheduled(db) == [NOW + timedelta(minutes=m) for m in range(1, 17)]
    # Woken when the last run comes within horizon + half the refill.
    assert due == NOW + timedelta(minutes=16 - 10 - 3)

    # Before then nothing is added; just after it, a whole refill is.
    await scheduler.run_once(NOW + timedelta(minutes=1))
    assert len(await _scheduled(db)) == 16
    await scheduler.run_once(due + timedelta(seconds=1))
    assert await _scheduled(db) == [NOW + timedelta(minutes=m) for m in range(1, 20)]
