"""The lease-expiry service with a fake clock and an in-memory lease store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from headrace.services import lease_expiry
from headrace.services.lease_expiry import LeaseExpiry
from headrace.services.slot_waiters import SlotWaiters
from headrace.storage import concurrency_leases
from headrace.storage.concurrency_leases import Expired
from headrace.storage.db import Database

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


class FakeLeases:
    """Lease rows by id (expiry only), standing in for the storage functions."""

    def __init__(self) -> None:
        self.expires: dict[str, datetime] = {}

    async def expire(self, _conn: Any, now: datetime, batch: int) -> list[Expired]:
        due = sorted((e, i) for i, e in self.expires.items() if e <= now)[:batch]
        for _, lease_id in due:
            del self.expires[lease_id]
        return [Expired(i, e, 1, "task_run", "tr-" + i, ["lim"]) for e, i in due]

    async def earliest_expiry(self, _conn: Any) -> datetime | None:
        return min(self.expires.values(), default=None)


class FakeDb:
    @asynccontextmanager
    async def write(self) -> AsyncIterator[None]:
        yield None

    read = write


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> FakeLeases:
    fake = FakeLeases()
    monkeypatch.setattr(concurrency_leases, "expire", fake.expire)
    monkeypatch.setattr(concurrency_leases, "earliest_expiry", fake.earliest_expiry)
    return fake


def service(released: list[int] | None = None) -> LeaseExpiry:
    calls = released if released is not None else []
    return LeaseExpiry(cast(Database, FakeDb()), released=lambda: calls.append(1))


async def test_frees_exactly_the_leases_expired_at_now(store: FakeLeases) -> None:
    store.expires = {"a": at(1), "b": at(1), "c": at(5)}
    released: list[int] = []
    expiry = service(released)

    assert await expiry.run_once(at(0.999)) == at(1)
    assert set(store.expires) == {"a", "b", "c"} and released == []

    assert await expiry.run_once(at(1)) == at(5)  # an expiry at exactly now counts
    assert set(store.expires) == {"c"}
    assert released == [1] and expiry.expired == 2

    assert await expiry.run_once(at(5)) is None
    assert store.expires == {} and released == [1, 1]


async def test_many_expired_leases_are_freed_in_batches(
    store: FakeLeases, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lease_expiry, "BATCH", 3)
    store.expires = {f"l{i}": at(-i) for i in range(7)}
    expiry = service()
    assert await expiry.run_once(NOW) is None
    assert expiry.expired == 7


async def test_logs_why_slots_came_back(
    store: FakeLeases, caplog: pytest.LogCaptureFixture
) -> None:
    store.expires = {"a": at(-1)}
    with caplog.at_level(logging.INFO, logger="headrace.services.lease_expiry"):
        await service().run_once(NOW)
    [line] = caplog.messages
    assert "concurrency lease a (1 slot(s) on lim; task_run tr-a)" in line
    assert "expired" in line and "without renewal or release; slots freed" in line


def test_a_deployment_lease_in_a_flow_run_state_wakes_it() -> None:
    expiry = service()
    expiry.notice({"type": "RUNNING", "state_details": {"scheduled_time": None}})
    assert not expiry._wake.is_set()
    expiry.notice({"type": "PENDING", "state_details": {"deployment_concurrency_lease_id": "l"}})
    assert expiry._wake.is_set()


def test_a_new_lease_wakes_it_only_when_it_expires_sooner() -> None:
    expiry = service()
    expiry.next_due = at(60)
    expiry.wake_if_sooner(at(120))
    assert not expiry._wake.is_set()
    expiry.wake_if_sooner(at(30))
    assert expiry._wake.is_set()


async def test_the_loop_sleeps_until_the_earliest_expiry(store: FakeLeases) -> None:
    clock = [NOW]
    store.expires = {"a": at(0.05)}
    released: list[int] = []
    expiry = LeaseExpiry(
        cast(Database, FakeDb()), released=lambda: released.append(1), clock=lambda: clock[0]
    )
    task = asyncio.create_task(expiry.loop())
    try:
        await asyncio.sleep(0.01)
        assert expiry.next_due == at(0.05) and released == []
        clock[0] = at(0.06)  # the fake clock passes the expiry while the loop sleeps
        for _ in range(100):
            await asyncio.sleep(0.01)
            if released:
                break
        assert released == [1] and store.expires == {}
    finally:
        task.cancel()


async def test_waiters_wake_on_release_and_time_out_otherwise() -> None:
    waiters = SlotWaiters()
    assert await waiters.wait(0.01) is False
    waiting = asyncio.create_task(waiters.wait(5))
    await asyncio.sleep(0)
    assert waiters.waiting == 1
    waiters.released()
    assert await waiting is True
    assert waiters.waiting == 0
