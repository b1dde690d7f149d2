"""The sleep-until-due loop shared by the flow-run services, with a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from headrace.services.due import RETRY_OVERDUE_SECONDS, DueService, sleep_seconds

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Scripted(DueService):
    """Returns the due times it is given, one per pass, and records the clock it saw."""

    def __init__(self, clock: FakeClock, dues: list[datetime | None | Exception]) -> None:
        super().__init__(clock=clock, fallback=300)
        self.dues = dues
        self.seen: list[datetime | None] = []

    async def run_once(self, now: datetime | None = None) -> datetime | None:
        self.seen.append(now)
        due = self.dues.pop(0)
        if isinstance(due, Exception):
            raise due
        return due


def test_sleep_until_due_capped_by_fallback() -> None:
    assert sleep_seconds(None, NOW, 300) == 300
    assert sleep_seconds(NOW + timedelta(seconds=12), NOW, 300) == pytest.approx(12, abs=0.01)
    assert sleep_seconds(NOW + timedelta(seconds=12), NOW, 12) == 12
    assert sleep_seconds(NOW + timedelta(hours=2), NOW, 300) == 300


def test_a_window_lets_what_comes_due_meanwhile_share_the_pass() -> None:
    two = timedelta(seconds=2)
    assert sleep_seconds(NOW + timedelta(seconds=12), NOW, 300, two) == pytest.approx(14, abs=0.01)
    # Just past due: the pass still waits out the window instead of running at once.
    assert sleep_seconds(NOW - timedelta(seconds=1), NOW, 300, two) == pytest.approx(1, abs=0.01)
    assert sleep_seconds(None, NOW, 300, two) == 300


def test_overdue_after_a_pass_retries_without_spinning() -> None:
    assert sleep_seconds(NOW, NOW, 300) == RETRY_OVERDUE_SECONDS
    assert sleep_seconds(NOW - timedelta(minutes=5), NOW, 300) == RETRY_OVERDUE_SECONDS
    assert sleep_seconds(NOW - timedelta(minutes=5), NOW, 0.5) == 0.5


async def test_pass_records_due_run_time_and_lag() -> None:
    clock = FakeClock(NOW)
    service = Scripted(clock, [NOW + timedelta(seconds=10), None])

    assert await service.pass_once() == NOW + timedelta(seconds=10)
    assert (service.next_due, service.last_run, service.last_lag) == (
        NOW + timedelta(seconds=10),
        NOW,
        0.0,
    )

    clock.advance(10.25)  # woke a quarter second after the due moment
    assert await service.pass_once() is None
    assert service.seen == [NOW, NOW + timedelta(seconds=10.25)]
    assert service.last_lag == pytest.approx(0.25)
    assert service.next_due is None


async def test_early_wake_has_no_lag() -> None:
    clock = FakeClock(NOW)
    service = Scripted(clock, [NOW + timedelta(seconds=60), None])
    await service.pass_once()
    clock.advance(5)
    await service.pass_once()
    assert service.last_lag == 0.0


async def test_failed_pass_retries_in_30_seconds() -> None:
    clock = FakeClock(NOW)
    service = Scripted(clock, [RuntimeError("db down")])

    assert await service.pass_once() == NOW + timedelta(seconds=30)


def test_wake_only_when_something_is_due_sooner() -> None:
    service = Scripted(FakeClock(NOW), [])
    service.next_due = NOW + timedelta(seconds=60)

    service.wake_if_sooner(NOW + timedelta(seconds=90))
    service.wake_if_sooner(None)
    assert not service._wake.is_set()

    service.wake_if_sooner(NOW + timedelta(seconds=30))
    assert service._wake.is_set()


def test_anything_new_wakes_a_service_with_nothing_pending() -> None:
    service = Scripted(FakeClock(NOW), [])
    service.next_due = None

    service.wake_if_sooner(NOW + timedelta(days=1))
    assert service._wake.is_set()


async def test_a_notice_during_a_pass_is_not_lost() -> None:
    clock = FakeClock(NOW)

    class Noticed(Scripted):
        async def run_once(self, now: datetime | None = None) -> datetime | None:
            # A change commits while the pass reads: later than the old due time.
            self.wake_if_sooner(NOW + timedelta(hours=1))
            return await super().run_once(now)

    service = Noticed(clock, [NOW + timedelta(hours=2)])
    service.next_due = NOW + timedelta(minutes=1)

    await service.pass_once()
    assert service._wake.is_set()  # the loop goes round again at once


async def test_loop_sleeps_until_woken() -> None:
    clock = FakeClock(NOW)
    service = Scripted(clock, [None, None, None])
    task = asyncio.create_task(service.loop())
    await asyncio.sleep(0.01)
    assert len(service.seen) == 1  # asleep for the 300 s fallback
    service.wake()
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(service.seen) == 2
