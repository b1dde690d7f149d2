"""Delivering background task runs to subscribed task workers.

The queue itself is rows in storage (``storage/task_queue.py``); this module is
the in-process side: who is waiting for which task keys, waking them when runs
are enqueued, and the life of one subscription.

Delivery guarantees (see ``docs/api-notes.md``):

* A subscription holds at most one run pushed and not yet acknowledged; the
  next run is claimed only after the acknowledgement is recorded.
* A run pushed but never acknowledged (the socket closed first) goes straight
  back to the queue, ahead of new runs.
* A claimed run carries a lease. The subscription renews the leases of every run
  its worker (its client id) acknowledged while the socket stays open, so a
  worker busy for a long time keeps its runs; rows of runs it has started are
  dropped at renewal. When the socket is gone, the leases lapse after
  ``lease_seconds``: if the worker reconnects (same client id) before that, it
  adopts them again; otherwise the expiry service (``services/task_redelivery``)
  requeues the runs that never started and drops the rest. A run is therefore
  never held by two workers at once.
* Waiting subscriptions sleep until ``enqueued`` (or ``on_notice`` from another
  process) wakes them, re-checking storage only every ``recheck_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.storage import task_queue as queue_store
from headrace.storage.db import Database
from headrace.types import WireDict

logger = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_RECHECK_SECONDS = 120.0

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Waiter:
    """One subscription's place in the idle lists: an event and why it was set."""

    __slots__ = ("event", "keys", "woken_for")

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self.event = asyncio.Event()
        self.woken_for: str | None = None


class Wakeups:
    """Idle subscriptions per task key.

    An enqueue of n runs for a key wakes at most n idle subscriptions of that
    key (the longest idle first), not all of them: the others would only race
    for rows that are already taken. A woken subscription is removed from the
    idle lists; one that leaves without claiming passes its wake-up on.
    """

    def __init__(self) -> None:
        self._idle: dict[str, dict[Waiter, None]] = {}

    def park(self, waiter: Waiter) -> None:
        for key in waiter.keys:
            self._idle.setdefault(key, {})[waiter] = None

    def unpark(self, waiter: Waiter) -> None:
        for key in waiter.keys:
            idle = self._idle.get(key)
            if idle is not None:
                idle.pop(waiter, None)
                if not idle:
                    del self._idle[key]

    def wake(self, counts: Mapping[str, int]) -> int:
        """Wake up to ``counts[key]`` idle subscriptions of each key; returns how many."""
        woken = 0
        for key, count in counts.items():
            for _ in range(count):
                idle = self._idle.get(key)
                if not idle:
                    break
                waiter = next(iter(idle))
                self.unpark(waiter)
                waiter.woken_for = key
                waiter.event.set()
                woken += 1
        return woken

    def wake_all(self) -> None:
        """Wake every idle subscription (something may have changed, unknown what)."""
        waiters = {w for idle in self._idle.values() for w in idle}
        for waiter in waiters:
            self.unpark(waiter)
            waiter.woken_for = None
            waiter.event.set()

    def idle(self) -> int:
        return len({w for idle in self._idle.values() for w in idle})

    def pass_on(self, waiter: Waiter) -> None:
        """``waiter`` leaves while woken for a run it did not take: wake another."""
        if waiter.event.is_set() and waiter.woken_for is not None:
            key, waiter.woken_for = waiter.woken_for, None
            self.wake({key: 1})


class TaskQueue:
    """The process's side of the background task-run queue.

    Args:
        db: the database holding the queue rows.
        lease_seconds: how long a claim outlives its worker's connection.
        recheck_seconds: the longest a waiting subscription sleeps without
            looking at storage (the safety net for missed cross-process notices).
        clock: the time source.
        announce: tells other processes which keys got runs (``{"keys":
            {key: count}}``); they pass it to their ``on_notice``.

    Attributes:
        on_lease: called with a lease's expiry whenever one is taken or left to
            lapse, so the expiry service can wake in time.
    """

    def __init__(
        self,
        db: Database,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        recheck_seconds: float = DEFAULT_RECHECK_SECONDS,
        clock: Clock = utc_now,
        announce: Callable[[WireDict], None] | None = None,
    ) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.recheck_seconds = recheck_seconds
        self.clock = clock
        self.announce = announce
        self.on_lease: Callable[[datetime], None] | None = None
        self.wakeups = Wakeups()
        self.subscriptions = 0
        self.delivered = 0
        self.released = 0

    @property
    def renew_every(self) -> float:
        """Seconds between lease renewals: two can fail before a lease lapses."""
        return self.lease.total_seconds() / 3

    def enqueued(self, task_keys: Iterable[str]) -> None:
        """Runs for ``task_keys`` (one entry per run) were committed: wake waiters."""
        counts = Counter(task_keys)
        if not counts:
            return
        self.wakeups.wake(counts)
        if self.announce is not None:
            self.announce({"keys": dict(counts)})

    def on_notice(self, notice: WireDict | None) -> None:
        """Another process enqueued runs (``None``: it may have; look again)."""
        keys = notice.get("keys") if isinstance(notice, dict) else None
        if not isinstance(keys, dict):
            self.wakeups.wake_all()
            return
        self.wakeups.wake({str(k): n for k, n in keys.items() if isinstance(n, int) and n > 0})

    def lease_taken(self, until: datetime) -> None:
        if self.on_lease is not None:
            self.on_lease(until)

    def subscribe(self, keys: Sequence[str], client_id: str) -> Subscription:
        """Start a subscription; the caller must ``close()`` it."""
        return Subscription(self, keys, client_id)

    # -- storage (one short transaction each; tests replace these) -------------

    async def has_claimable(self, keys: Sequence[str]) -> bool:
        async with self.db.read() as conn:
            return await queue_store.has_claimable(conn, keys)

    async def claim(self, keys: Sequence[str], client_id: str) -> WireDict | None:
        now = self.clock()
        async with self.db.write() as conn:
            return await queue_store.claim(conn, keys, client_id, now, now + self.lease)

    async def ack(self, run_id: str, client_id: str) -> bool:
        now = self.clock()
        async with self.db.write() as conn:
            return await queue_store.ack(conn, run_id, client_id, now, now + self.lease)

    async def release(self, run_id: str, client_id: str) -> str | None:
        async with self.db.write() as conn:
            return await queue_store.release(conn, run_id, client_id)

    async def renew(self, client_id: str, in_flight: str | None) -> int:
        until = self.clock() + self.lease
        async with self.db.write() as conn:
            return await queue_store.renew(conn, client_id, in_flight, until)


class Subscription:
    """One task worker's subscription: claim, push, acknowledge, one run at a time.

    Args:
        queue: the process's task queue.
        keys: the task keys the worker serves.
        client_id: the worker's id (``<hostname>-<pid>``), the holder of its claims.
    """

    def __init__(self, queue: TaskQueue, keys: Sequence[str], client_id: str) -> None:
        self.queue = queue
        self.keys = tuple(dict.fromkeys(keys))
        self.client_id = client_id
        self.in_flight: str | None = None
        self._waiter = Waiter(self.keys)
        # Set while the worker may hold runs; the renewer sleeps while it is clear.
        self._holding = asyncio.Event()
        self._holding.set()  # adopt what this client id acknowledged on an earlier socket
        self._holds = 0
        self._storage_op: asyncio.Future[Any] | None = None
        self._renewer = asyncio.ensure_future(self._keep_leases())
        queue.subscriptions += 1

    async def next_run(self) -> WireDict:
        """Wait for the next run for this subscription's keys and claim it."""
        if self.in_flight is not None:
            raise RuntimeError("the previous run is not acknowledged or released yet")
        wakeups, waiter = self.queue.wakeups, self._waiter
        while True:
            waiter.event.clear()
            waiter.woken_for = None
            # Parked before claiming: an enqueue committed after the claim's read wakes us.
            wakeups.park(waiter)
            run = await self._shielded(self._claim())
            if run is not None:
                wakeups.unpark(waiter)
                wakeups.pass_on(waiter)
                return run  # type: ignore[no-any-return]
            while True:
                try:
                    await asyncio.wait_for(waiter.event.wait(), self.queue.recheck_seconds)
                    break
                except TimeoutError:
                    if await self.queue.has_claimable(self.keys):
                        break

    async def _claim(self) -> WireDict | None:
        run = await self.queue.claim(self.keys, self.client_id)
        if run is not None:
            self.in_flight = run["id"]
            self._held()
            self.queue.delivered += 1
            self.queue.lease_taken(self.queue.clock() + self.queue.lease)
        return run

    async def acked(self) -> None:
        """The worker acknowledged the run in flight: it is the worker's now."""
        run_id = self.in_flight
        if run_id is None:
            return
        still_held = await self._shielded(self.queue.ack(run_id, self.client_id))
        self.in_flight = None
        self._held()
        if not still_held:
            logger.warning(
                "task worker %s acknowledged task run %s after its claim lapsed",
                self.client_id,
                run_id,
            )

    async def close(self) -> None:
        """End the subscription: a run pushed and not acknowledged goes back to the queue."""
        wakeups = self.queue.wakeups
        wakeups.unpark(self._waiter)
        wakeups.pass_on(self._waiter)
        self._renewer.cancel()
        self.queue.subscriptions -= 1
        if self._storage_op is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._storage_op
        if self.in_flight is not None:
            run_id, self.in_flight = self.in_flight, None
            try:
                key = await asyncio.shield(self.queue.release(run_id, self.client_id))
            except Exception:
                logger.exception("could not requeue task run %s; its lease will", run_id)
                key = None
            if key is not None:
                self.queue.released += 1
                self.queue.enqueued([key])
        if self._holding.is_set():
            # If the worker does not come back, the expiry service takes over then.
            self.queue.lease_taken(self.queue.clock() + self.queue.lease)

    async def _shielded(self, op: Any) -> Any:
        """Run a storage step to completion even if the socket's task is cancelled."""
        self._storage_op = asyncio.ensure_future(op)
        try:
            return await asyncio.shield(self._storage_op)
        finally:
            if self._storage_op.done():
                self._storage_op = None

    def _held(self) -> None:
        self._holds += 1
        self._holding.set()

    async def _keep_leases(self) -> None:
        while True:
            await self._holding.wait()
            await asyncio.sleep(self.queue.renew_every)
            holds = self._holds
            try:
                held = await self.queue.renew(self.client_id, self.in_flight)
            except Exception:
                logger.exception("renewing the task-run leases of %s failed", self.client_id)
                continue
            if held == 0 and holds == self._holds and self.in_flight is None:
                self._holding.clear()
