"""Late runs, pause expirations and cancellation cleanup against real storage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from headrace.orchestration import states
from headrace.services import cancellation_cleanup, pause_expirations
from headrace.services.cancellation_cleanup import CancellationCleanup
from headrace.services.late_runs import LateRuns
from headrace.services.pause_expirations import PauseExpirations
from headrace.settings import Settings
from headrace.storage import flow_runs, flows, migrate, task_runs
from headrace.storage.db import Database
from headrace.types import WireDict

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'services.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(Settings(home=tmp_path, database_url=database_url))
    await migrate.upgrade(database)
    yield database
    await database.dispose()


class Events:
    """Collects what a service publishes."""

    def __init__(self) -> None:
        self.events: list[WireDict] = []

    async def __call__(self, events: list[WireDict]) -> None:
        self.events.extend(events)

    def names(self) -> list[str]:
        return [e["event"] for e in self.events]


async def _flow(db: Database) -> str:
    async with db.write() as conn:
        flow, _ = await flows.ensure_flow(conn, "f", [], {})
    return str(flow["id"])


async def _run(db: Database, flow_id: str, state: WireDict, **body: Any) -> str:
    async with db.write() as conn:
        run, _ = await flow_runs.create_flow_run(
            conn, {"flow_id": flow_id, "state": state, **body}, NOW - timedelta(minutes=5)
        )
    return str(run["id"])


async def _set(
    db: Database, run_id: str, state: WireDict, at: datetime, force: bool = True
) -> None:
    async with db.write() as conn:
        transition = await flow_runs.set_flow_run_state(conn, run_id, state, force, at)
    assert transition.written is not None, transition.decision


async def _read(db: Database, run_id: str) -> WireDict:
    async with db.read() as conn:
        return await flow_runs.read_flow_run(conn, run_id, NOW)


def _scheduled(at: datetime) -> WireDict:
    return {
        "type": "SCHEDULED",
        "name": "Scheduled",
        "state_details": {"scheduled_time": states.wire_time(at)},
    }


RUNNING: WireDict = {"type": "RUNNING", "name": "Running"}


# --- late runs -------------------------------------------------------------


async def test_a_run_scheduled_20s_ago_becomes_late(db: Database) -> None:
    flow_id = await _flow(db)
    overdue = await _run(db, flow_id, _scheduled(NOW - timedelta(seconds=20)))
    recent = await _run(db, flow_id, _scheduled(NOW - timedelta(seconds=10)))
    later = await _run(db, flow_id, _scheduled(NOW + timedelta(seconds=60)))
    events = Events()
    service = LateRuns(db, after=timedelta(seconds=15), publish=events)

    due = await service.run_once(NOW)

    run = await _read(db, overdue)
    assert (run["state_type"], run["state_name"]) == ("SCHEDULED", "Late")
    assert states.detail_time(run["state"], "scheduled_time") == NOW - timedelta(seconds=20)
    assert run["next_scheduled_start_time"] == NOW - timedelta(seconds=20)
    assert (await _read(db, recent))["state_name"] == "Scheduled"
    assert (await _read(db, later))["state_name"] == "Scheduled"
    assert events.names() == ["prefect.flow-run.Late"]
    assert events.events[0]["resource"]["prefect.resource.id"] == f"prefect.flow-run.{overdue}"
    # The next one to turn late is the run scheduled 10 s ago, 5 s from now.
    assert due == NOW + timedelta(seconds=5)

    # Nothing changes until then; a Late run is never marked again.
    assert await service.run_once(NOW + timedelta(seconds=4)) == due
    assert events.names() == ["prefect.flow-run.Late"]
    assert await service.run_once(due) == NOW + timedelta(seconds=75)
    assert (await _read(db, recent))["state_name"] == "Late"
    assert len(events.events) == 2


async def test_late_skips_runs_that_left_scheduled(db: Database) -> None:
    flow_id = await _flow(db)
    started = await _run(db, flow_id, _scheduled(NOW - timedelta(minutes=1)))
    await _set(db, started, {"type": "PENDING", "name": "Pending"}, NOW - timedelta(seconds=30))
    retrying = await _run(
        db,
        flow_id,
        {**_scheduled(NOW - timedelta(minutes=1)), "name": "AwaitingRetry"},
    )

    assert await LateRuns(db, after=timedelta(seconds=15)).run_once(NOW) is None

    assert (await _read(db, started))["state_type"] == "PENDING"
    assert (await _read(db, retrying))["state_name"] == "AwaitingRetry"


async def test_late_runs_loop_wakes_on_notice_and_sleeps_to_the_moment(db: Database) -> None:
    flow_id = await _flow(db)
    events = Events()
    service = LateRuns(db, after=timedelta(seconds=0.3), publish=events, fallback=60)
    task = asyncio.create_task(service.loop())
    try:
        await asyncio.sleep(0.1)  # the first pass finds nothing and sleeps for the fallback
        assert service.next_due is None
        start = datetime.now(UTC)
        async with db.write() as conn:
            run, _ = await flow_runs.create_flow_run(
                conn, {"flow_id": flow_id, "state": _scheduled(start)}, start
            )
        service.notice(run["state"])
        for _ in range(100):
            if events.events:
                break
            await asyncio.sleep(0.02)
        marked = datetime.now(UTC)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert events.names() == ["prefect.flow-run.Late"]
    assert timedelta(seconds=0.3) <= marked - start < timedelta(seconds=1.5)
    assert service.last_run is not None


# --- pause expirations -----------------------------------------------------


async def test_a_pause_past_its_timeout_fails(db: Database) -> None:
    flow_id = await _flow(db)
    run_id = await _run(db, flow_id, RUNNING)
    deadline = NOW + timedelta(seconds=10)
    pause = {
        "type": "PAUSED",
        "name": "Paused",
        "state_details": {"pause_timeout": states.wire_time(deadline), "pause_key": "k"},
    }
    await _set(db, run_id, pause, NOW, force=False)
    open_ended = await _run(db, flow_id, RUNNING)
    await _set(db, open_ended, {**pause, "state_details": {"pause_key": "k"}}, NOW, force=False)
    events = Events()
    service = PauseExpirations(db, publish=events)

    assert await service.run_once(NOW) == deadline
    assert (await _read(db, run_id))["state_type"] == "PAUSED"

    assert await service.run_once(deadline + timedelta(seconds=1)) is None

    run = await _read(db, run_id)
    assert (run["state_type"], run["state_name"]) == ("FAILED", "Failed")
    assert run["state"]["message"] == pause_expirations.MESSAGE
    assert (await _read(db, open_ended))["state_type"] == "PAUSED"
    assert events.names() == ["prefect.flow-run.Failed"]


# --- cancellation cleanup --------------------------------------------------


async def _task(db: Database, flow_run_id: str, key: str, state: WireDict = RUNNING) -> str:
    async with db.write() as conn:
        run, _ = await task_runs.create_task_run(
            conn,
            {"flow_run_id": flow_run_id, "task_key": key, "dynamic_key": "0", "state": state},
            NOW - timedelta(minutes=5),
        )
    return str(run["id"])


async def test_a_cancelled_parents_running_subflows_are_cancelled(db: Database) -> None:
    flow_id = await _flow(db)
    parent = await _run(db, flow_id, RUNNING)
    inline = await _run(db, flow_id, RUNNING, parent_task_run_id=await _task(db, parent, "a"))
    deployed = await _run(
        db,
        flow_id,
        RUNNING,
        parent_task_run_id=await _task(db, parent, "b"),
        deployment_id="0195b3a0-0000-7000-8000-000000000001",
    )
    # A subflow of the inline subflow: cancelled in the same pass.
    nested = await _run(db, flow_id, RUNNING, parent_task_run_id=await _task(db, inline, "c"))
    finished = await _run(db, flow_id, RUNNING, parent_task_run_id=await _task(db, parent, "d"))
    await _set(db, finished, {"type": "COMPLETED", "name": "Completed"}, NOW)
    plain_task = await _task(db, parent, "e")
    unrelated = await _run(db, flow_id, RUNNING)
    await _set(db, parent, {"type": "CANCELLED", "name": "Cancelled"}, NOW)
    events = Events()
    service = CancellationCleanup(db, cancelling_timeout=timedelta(seconds=300), publish=events)

    due = await service.run_once(NOW + timedelta(seconds=1))

    assert (await _read(db, inline))["state_type"] == "CANCELLED"
    assert (await _read(db, inline))["state"]["message"] == cancellation_cleanup.PARENT_CANCELLED
    assert (await _read(db, nested))["state_type"] == "CANCELLED"
    assert (await _read(db, deployed))["state_type"] == "CANCELLING"
    assert (await _read(db, finished))["state_type"] == "COMPLETED"
    assert (await _read(db, unrelated))["state_type"] == "RUNNING"
    async with db.read() as conn:
        task = await task_runs.read_task_run(conn, plain_task, NOW)
    assert task["state_type"] == "CANCELLED"
    assert sorted(events.names()) == [
        "prefect.flow-run.Cancelled",
        "prefect.flow-run.Cancelled",
        "prefect.flow-run.Cancelling",
    ]
    # The deployed subflow's cancellation times out 300 s after it began.
    assert due == NOW + timedelta(seconds=301)

    # A second pass finds nothing more to do.
    await service.run_once(NOW + timedelta(seconds=2))
    assert len(events.events) == 3


async def test_a_run_stuck_cancelling_is_cancelled_after_the_timeout(db: Database) -> None:
    flow_id = await _flow(db)
    run_id = await _run(db, flow_id, RUNNING)
    await _set(db, run_id, {"type": "CANCELLING", "name": "Cancelling"}, NOW)
    events = Events()
    service = CancellationCleanup(db, cancelling_timeout=timedelta(seconds=300), publish=events)

    assert await service.run_once(NOW + timedelta(seconds=10)) == NOW + timedelta(seconds=300)
    assert (await _read(db, run_id))["state_type"] == "CANCELLING"

    assert await service.run_once(NOW + timedelta(seconds=300)) is None

    run = await _read(db, run_id)
    assert (run["state_type"], run["state"]["message"]) == (
        "CANCELLED",
        cancellation_cleanup.TIMED_OUT,
    )
    assert events.names() == ["prefect.flow-run.Cancelled"]


async def test_server_wakes_only_the_services_a_change_concerns(tmp_path: Path) -> None:
    from headrace.server import Server

    server = Server(Settings(home=tmp_path), services=[])
    try:
        services = (server.late_runs, server.pause_expirations, server.cancellation_cleanup)
        for service in services:
            service.next_due = NOW + timedelta(hours=1)

        server.flow_runs_changed({"type": "RUNNING", "name": "Running", "state_details": {}})
        assert [s._wake.is_set() for s in services] == [False, False, False]

        server.flow_runs_changed({"type": "CANCELLED", "name": "Cancelled", "timestamp": NOW})
        assert [s._wake.is_set() for s in services] == [False, False, True]

        server.flow_runs_changed(_scheduled(NOW))
        assert [s._wake.is_set() for s in services] == [True, False, True]

        server.flow_runs_changed(None)
        assert all(s._wake.is_set() for s in services)
    finally:
        await server.db.dispose()
