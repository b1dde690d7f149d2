"""Service leases: one holder per singleton service, takeover when a lease lapses or is released."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from headrace.services.leases import LeaseKeeper
from headrace.services.supervisor import Supervisor
from headrace.settings import Settings
from headrace.storage import migrate, service_leases
from headrace.storage.db import Database

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NAMES = ["scheduler", "late-runs"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(Settings(home=tmp_path, database_url=database_url))
    await migrate.upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


async def claim(db: Database, holder: str, now: datetime, seconds: float = 30) -> set[str]:
    async with db.write() as conn:
        leases = await service_leases.claim(conn, NAMES, holder, now, timedelta(seconds=seconds))
    return {lease.name for lease in leases if lease.holder == holder}


async def test_a_live_lease_is_held_by_one_holder_until_it_lapses(db: Database) -> None:
    assert await claim(db, "a", T0) == set(NAMES)
    assert await claim(db, "b", T0 + timedelta(seconds=10)) == set()
    # a renews: the lease runs from the renewal
    assert await claim(db, "a", T0 + timedelta(seconds=20)) == set(NAMES)
    assert await claim(db, "b", T0 + timedelta(seconds=40)) == set()
    # a stops renewing: b takes over once it lapses
    assert await claim(db, "b", T0 + timedelta(seconds=50)) == set(NAMES)
    assert await claim(db, "a", T0 + timedelta(seconds=51)) == set()


async def test_renewal_keeps_the_acquired_time_and_release_frees_at_once(db: Database) -> None:
    await claim(db, "a", T0)
    await claim(db, "a", T0 + timedelta(seconds=10))
    async with db.read() as conn:
        leases = await service_leases.read(conn)
    assert [(x.name, x.holder, x.acquired, x.expires) for x in leases] == [
        (name, "a", T0, T0 + timedelta(seconds=40)) for name in sorted(NAMES)
    ]
    async with db.write() as conn:
        await service_leases.release(conn, ["scheduler"], "b")  # not b's: no effect
        await service_leases.release(conn, ["scheduler"], "a")
    assert await claim(db, "b", T0 + timedelta(seconds=11)) == {"scheduler"}


class Recorder:
    """Stands in for a service: counts how many copies run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.starts = 0

    def loop_for(self, name: str):  # type: ignore[no-untyped-def]
        async def loop() -> None:
            self.running += 1
            self.starts += 1
            self.peak = max(self.peak, self.running)
            try:
                await asyncio.Event().wait()
            finally:
                self.running -= 1

        return loop


def keeper(db: Database, recorder: Recorder, holder: str, seconds: float) -> LeaseKeeper:
    supervisor = Supervisor()
    for name in NAMES:
        supervisor.add(name, recorder.loop_for(name), autostart=False)
    result = LeaseKeeper(db, supervisor, NAMES, timedelta(seconds=seconds), holder=holder)
    supervisor.add("leases", result.loop)
    return result


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_keepers_run_each_service_once_and_hand_over_on_stop(db: Database) -> None:
    recorder = Recorder()
    first = keeper(db, recorder, "first", seconds=30)
    second = keeper(db, recorder, "second", seconds=30)
    first.supervisor.start()
    await wait_until(lambda: first.held == set(NAMES))
    second.supervisor.start()
    await second.claim_once()
    assert second.held == set()
    assert recorder.running == 2  # two services, each once
    await first.supervisor.stop(5)  # releases its leases
    assert recorder.running == 0
    second.wake()  # what the "leases" bus notice does
    await wait_until(lambda: second.held == set(NAMES) and recorder.running == 2)
    assert recorder.peak == 2
    await second.supervisor.stop(5)


async def test_a_keeper_that_stops_renewing_is_replaced_after_its_lease(db: Database) -> None:
    recorder = Recorder()
    dead = keeper(db, recorder, "dead", seconds=1.0)
    await dead.claim_once()  # holds both, then never renews (as if killed)
    assert dead.held == set(NAMES)
    survivor = keeper(db, recorder, "survivor", seconds=1.0)
    survivor.supervisor.start()
    await asyncio.sleep(0.2)
    assert survivor.held == set()
    await wait_until(lambda: survivor.held == set(NAMES), timeout=5)
    await survivor.supervisor.stop(5)
    await dead.supervisor.stop(5)


async def test_renew_all_extends_only_live_leases_all_held_by_the_holder(db: Database) -> None:
    await claim(db, "a", T0)
    async with db.write() as conn:
        assert await service_leases.renew_all(
            conn, NAMES, "a", T0 + timedelta(seconds=20), timedelta(seconds=30)
        )
    # Renewed to T0+50: b cannot take them at T0+40 ...
    assert await claim(db, "b", T0 + timedelta(seconds=40)) == set()
    # ... but can once a stops renewing; a's renew_all then reports the loss.
    assert await claim(db, "b", T0 + timedelta(seconds=51)) == set(NAMES)
    async with db.write() as conn:
        assert not await service_leases.renew_all(
            conn, NAMES, "a", T0 + timedelta(seconds=52), timedelta(seconds=30)
        )
