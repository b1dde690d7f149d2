"""Background task delivery in-process: wake-ups, claim/ack/release, leases, with a fake clock.

The storage steps of ``TaskQueue`` are replaced by an in-memory queue with the
same contract as ``storage/task_queue.py`` (tested against real databases in
``tests/integration/test_task_queue_storage.py``); everything else is the real
code: which subscription claims when, what goes back to the queue on
disconnect, when leases are renewed and when the expiry service is told.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from headrace.storage import task_queue as store
from headrace.task_queue import Subscription, TaskQueue, Waiter, Wakeups
from headrace.types import WireDict

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Row:
    run_id: str
    key: str
    priority: int
    seq: int
    claimed_by: str | None = None
    acked: bool = False
    lease_until: datetime | None = None
    state_type: str = "SCHEDULED"


class MemoryQueue(TaskQueue):
    """A TaskQueue whose storage is a dict (same rules as the SQL)."""

    def __init__(self, clock: FakeClock, lease_seconds: float = 30.0, **kw: Any) -> None:
        super().__init__(db=None, lease_seconds=lease_seconds, clock=clock, **kw)  # type: ignore[arg-type]
        self.rows: dict[str, Row] = {}
        self.calls: list[str] = []
        self.leases: list[datetime] = []
        self.on_lease = self.leases.append
        self._seq = 0

    def put(self, run_id: str, key: str = "k", retry: bool = False) -> None:
        self._seq += 1
        self.rows[run_id] = Row(run_id, key, store.RETRY if retry else store.NEW, self._seq)
        self.enqueued([key])

    async def has_claimable(self, keys: Any) -> bool:
        self.calls.append("peek")
        return any(r.claimed_by is None and r.key in keys for r in self.rows.values())

    async def claim(self, keys: Any, client_id: str) -> WireDict | None:
        self.calls.append("claim")
        await asyncio.sleep(0)
        free = [r for r in self.rows.values() if r.claimed_by is None and r.key in keys]
        if not free:
            return None
        row = min(free, key=lambda r: (r.priority, r.seq))
        row.claimed_by, row.lease_until = client_id, self.clock() + self.lease
        return {"id": row.run_id, "task_key": row.key}

    async def ack(self, run_id: str, client_id: str) -> bool:
        self.calls.append("ack")
        row = self.rows.get(run_id)
        if row is None or row.claimed_by != client_id:
            return False
        row.acked, row.lease_until = True, self.clock() + self.lease
        return True

    async def release(self, run_id: str, client_id: str) -> str | None:
        self.calls.append("release")
        row = self.rows.get(run_id)
        if row is None or row.claimed_by != client_id or row.acked:
            return None
        row.claimed_by, row.lease_until, row.priority = None, None, store.RETRY
        return row.key

    async def renew(self, client_id: str, in_flight: str | None) -> int:
        self.calls.append("renew")
        held = 0
        for row in list(self.rows.values()):
            if row.claimed_by != client_id or not (row.acked or row.run_id == in_flight):
                continue
            if row.acked and not store.redeliverable(row.state_type):
                del self.rows[row.run_id]
                continue
            row.lease_until = self.clock() + self.lease
            held += 1
        return held

    def expire(self) -> None:
        """What the redelivery service does at the clock's time."""
        now = self.clock()
        for row in list(self.rows.values()):
            if row.lease_until is None or row.lease_until > now:
                continue
            if store.redeliverable(row.state_type):
                row.claimed_by, row.acked, row.lease_until = None, False, None
                row.priority = store.RETRY
                self.enqueued([row.key])
            else:
                del self.rows[row.run_id]


async def next_run(sub: Subscription, timeout: float = 1.0) -> WireDict:
    return await asyncio.wait_for(sub.next_run(), timeout)


async def still_waiting(task: asyncio.Task[Any]) -> bool:
    for _ in range(5):
        await asyncio.sleep(0)
    return not task.done()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- pure decisions -------------------------------------------------------------


def test_deferred_scheduled_states() -> None:
    details = {"deferred": True}
    assert store.is_deferred_scheduled({"type": "SCHEDULED", "state_details": details})
    assert not store.is_deferred_scheduled({"type": "SCHEDULED", "state_details": {}})
    assert not store.is_deferred_scheduled({"type": "PENDING", "state_details": details})
    assert not store.is_deferred_scheduled(None)
    assert store.priority_of({"name": "AwaitingRetry"}) == store.RETRY
    assert store.priority_of({"name": "Scheduled"}) == store.NEW


@pytest.mark.parametrize(
    ("state_type", "redeliver"),
    [("SCHEDULED", True), ("PENDING", True), ("RUNNING", False), ("COMPLETED", False)]
    + [("FAILED", False), ("CRASHED", False), (None, False)],
)
def test_a_lapsed_claim_is_redelivered_only_if_the_run_never_started(
    state_type: str | None, redeliver: bool
) -> None:
    assert store.redeliverable(state_type) is redeliver


# -- wake-ups -------------------------------------------------------------------


async def test_an_enqueue_wakes_as_many_idle_subscribers_as_runs_longest_idle_first() -> None:
    wakeups = Wakeups()
    first, second, third = Waiter(["k"]), Waiter(["k"]), Waiter(["other"])
    for waiter in (first, second, third):
        wakeups.park(waiter)

    assert wakeups.wake({"k": 1}) == 1
    assert first.event.is_set() and first.woken_for == "k"
    assert not second.event.is_set() and not third.event.is_set()
    assert wakeups.wake({"k": 5}) == 1
    assert second.event.is_set()
    assert wakeups.idle() == 1


async def test_a_woken_subscriber_that_leaves_passes_its_wake_up_on() -> None:
    wakeups = Wakeups()
    leaving, other = Waiter(["k"]), Waiter(["k", "j"])
    wakeups.park(leaving)
    wakeups.park(other)
    wakeups.wake({"k": 1})

    wakeups.pass_on(leaving)

    assert other.event.is_set() and other.woken_for == "k"
    assert leaving.woken_for is None


async def test_an_unknown_change_wakes_everyone() -> None:
    wakeups = Wakeups()
    waiters = [Waiter(["a"]), Waiter(["b", "a"])]
    for waiter in waiters:
        wakeups.park(waiter)
    wakeups.wake_all()
    assert all(w.event.is_set() for w in waiters)
    assert wakeups.idle() == 0


async def test_notices_from_other_processes_wake_by_key(clock: FakeClock) -> None:
    announced: list[WireDict] = []
    queue = MemoryQueue(clock, announce=announced.append)
    a, b = Waiter(["a"]), Waiter(["b"])
    queue.wakeups.park(a)
    queue.wakeups.park(b)

    queue.on_notice({"keys": {"b": 1}})
    assert b.event.is_set() and not a.event.is_set()
    queue.on_notice(None)
    assert a.event.is_set()
    queue.enqueued(["x", "x", "y"])
    assert announced == [{"keys": {"x": 2, "y": 1}}]


# -- claim, ack, release --------------------------------------------------------


async def test_a_waiting_subscriber_is_woken_by_an_enqueue_not_by_polling(
    clock: FakeClock,
) -> None:
    queue = MemoryQueue(clock)
    sub = queue.subscribe(["k"], "w-1")
    waiting = asyncio.ensure_future(sub.next_run())
    assert await still_waiting(waiting)
    assert queue.calls == ["claim"]

    queue.put("r1")

    assert (await asyncio.wait_for(waiting, 1))["id"] == "r1"
    assert queue.calls == ["claim", "claim"]
    assert sub.in_flight == "r1"
    assert queue.leases == [T0 + queue.lease]
    await sub.close()


async def test_one_run_in_flight_until_acknowledged(clock: FakeClock) -> None:
    queue = MemoryQueue(clock)
    queue.put("r1")
    queue.put("r2")
    sub = queue.subscribe(["k"], "w-1")
    assert (await next_run(sub))["id"] == "r1"
    with pytest.raises(RuntimeError):
        await sub.next_run()

    clock.advance(5)
    await sub.acked()

    assert sub.in_flight is None
    assert queue.rows["r1"].acked
    assert queue.rows["r1"].lease_until == T0 + timedelta(seconds=35)
    assert (await next_run(sub))["id"] == "r2"
    await sub.close()


async def test_disconnect_before_ack_requeues_first_and_wakes_another_worker(
    clock: FakeClock,
) -> None:
    queue = MemoryQueue(clock)
    queue.put("r1")
    queue.put("r2")
    first, second = queue.subscribe(["k"], "w-1"), queue.subscribe(["k"], "w-2")
    assert (await next_run(first))["id"] == "r1"
    assert (await next_run(second))["id"] == "r2"
    await second.acked()
    waiting = asyncio.ensure_future(second.next_run())
    assert await still_waiting(waiting)

    await first.close()

    assert queue.rows["r1"].priority == store.RETRY
    assert (await asyncio.wait_for(waiting, 1))["id"] == "r1"
    assert queue.released == 1
    await second.close()


async def test_retries_are_served_before_new_runs(clock: FakeClock) -> None:
    queue = MemoryQueue(clock)
    queue.put("new")
    queue.put("retry", retry=True)
    sub = queue.subscribe(["k"], "w")
    assert (await next_run(sub))["id"] == "retry"
    await sub.close()


async def test_a_claim_finishing_after_the_socket_closed_is_released(clock: FakeClock) -> None:
    queue = MemoryQueue(clock)
    queue.put("r1")
    sub = queue.subscribe(["k"], "w")
    claiming = asyncio.ensure_future(sub.next_run())
    await asyncio.sleep(0)  # the claim is under way
    claiming.cancel()

    await sub.close()

    assert queue.rows["r1"].claimed_by is None
    assert "release" in queue.calls


async def test_fallback_recheck_peeks_before_claiming(clock: FakeClock) -> None:
    queue = MemoryQueue(clock, recheck_seconds=0.01)
    sub = queue.subscribe(["k"], "w")
    waiting = asyncio.ensure_future(sub.next_run())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert queue.calls.count("claim") == 1
    assert queue.calls.count("peek") >= 2

    # A run enqueued by another process whose notice never arrived.
    queue.rows["r1"] = Row("r1", "k", store.NEW, 1)

    assert (await asyncio.wait_for(waiting, 1))["id"] == "r1"
    await sub.close()


# -- leases -----------------------------------------------------------------------


async def test_held_runs_are_renewed_while_connected_and_left_to_lapse_after(
    clock: FakeClock,
) -> None:
    queue = MemoryQueue(clock, lease_seconds=0.03)  # renews every 10 ms (real time)
    queue.put("r1")
    sub = queue.subscribe(["k"], "w")
    await next_run(sub)
    await sub.acked()
    clock.advance(60)
    await asyncio.sleep(0.05)
    assert queue.calls.count("renew") >= 1
    assert queue.rows["r1"].lease_until == clock.now + queue.lease

    await sub.close()
    clock.advance(0.02)
    queue.expire()
    assert queue.rows["r1"].claimed_by == "w"  # within the lease: the worker may come back
    assert queue.leases[-1] == clock.now - timedelta(seconds=0.02) + queue.lease

    clock.advance(1)
    queue.expire()
    assert queue.rows["r1"].claimed_by is None
    assert queue.rows["r1"].priority == store.RETRY


async def test_a_reconnecting_worker_adopts_its_acknowledged_runs(clock: FakeClock) -> None:
    queue = MemoryQueue(clock, lease_seconds=0.03)
    queue.put("r1")
    old = queue.subscribe(["k"], "w")
    await next_run(old)
    await old.acked()
    await old.close()

    new = queue.subscribe(["k"], "w")
    clock.advance(100)
    await asyncio.sleep(0.05)  # the new subscription's first renewal
    queue.expire()

    assert queue.rows["r1"].claimed_by == "w"
    assert queue.rows["r1"].lease_until is not None
    assert queue.rows["r1"].lease_until > clock.now
    await new.close()


async def test_renewal_stops_once_the_worker_started_everything(clock: FakeClock) -> None:
    queue = MemoryQueue(clock, lease_seconds=0.03)
    queue.put("r1")
    sub = queue.subscribe(["k"], "w")
    await next_run(sub)
    await sub.acked()
    queue.rows["r1"].state_type = "RUNNING"
    await asyncio.sleep(0.05)

    assert "r1" not in queue.rows
    renewals = queue.calls.count("renew")
    await asyncio.sleep(0.05)
    assert queue.calls.count("renew") == renewals  # idle: no timers
    await sub.close()


async def test_a_started_run_is_never_redelivered(clock: FakeClock) -> None:
    queue = MemoryQueue(clock)
    queue.put("r1")
    sub = queue.subscribe(["k"], "w")
    await next_run(sub)
    await sub.acked()
    await sub.close()
    queue.rows["r1"].state_type = "RUNNING"

    clock.advance(31)
    queue.expire()

    assert "r1" not in queue.rows
