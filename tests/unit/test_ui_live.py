"""The dashboard's live feed: notices coalesce into at most one event per interval per stream."""

from __future__ import annotations

import asyncio

import pytest

from headrace.ui.live import Feed, Pending, kinds_of

BOTH = 'event: changed\ndata: {"tasks":true,"workers":true}\n\n'
TASKS = 'event: changed\ndata: {"tasks":true,"workers":false}\n\n'
WORKERS = 'event: changed\ndata: {"tasks":false,"workers":true}\n\n'


def test_kinds_of_a_notice() -> None:
    assert kinds_of({"tasks": True, "workers": False}) == {"tasks"}
    assert kinds_of({"workers": True, "other": True}) == {"workers"}
    assert kinds_of({}) == set()
    assert kinds_of(None) == {"tasks", "workers"}  # "may have missed something"


def test_pending_is_a_set_sent_at_most_once_per_interval() -> None:
    pending = Pending(interval=0.5)
    assert pending.delay(now=100.0) is None
    for _ in range(1000):
        pending.add({"tasks"})
    pending.add({"workers"})
    assert pending.delay(now=100.0) == 0.0
    assert pending.take(now=100.0) == {"tasks", "workers"}
    assert pending.delay(now=100.1) is None

    pending.add({"tasks"})
    assert pending.delay(now=100.2) == pytest.approx(0.3)  # the interval since the last send
    assert pending.delay(now=100.5) == 0.0
    assert pending.take(now=100.7) == {"tasks"}
    assert pending.kinds == set()


async def test_a_flood_of_notices_makes_one_event() -> None:
    feed = Feed(interval=0.05, keepalive=60.0)
    stream = feed.stream()
    assert (await anext(stream)).startswith("retry: ")

    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the stream is waiting for a notice
    for _ in range(1000):
        feed.notice({"tasks": True, "workers": False})
    assert await asyncio.wait_for(first, 10) == TASKS

    # Notices within the interval wait as one pending set, sent once it has passed.
    for _ in range(1000):
        feed.notice({"workers": True})
    feed.notice(None)
    assert await asyncio.wait_for(anext(stream), 10) == BOTH

    idle = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(idle, 10)  # nothing more was pending
    assert not feed.full


async def test_streams_are_bounded_and_independent() -> None:
    feed = Feed(interval=0.01, keepalive=60.0, max_streams=2)
    one, two = feed.stream(), feed.stream()
    await anext(one)
    await anext(two)
    assert feed.full

    feed.notice({"workers": True})
    assert await asyncio.wait_for(anext(one), 10) == WORKERS
    assert await asyncio.wait_for(anext(two), 10) == WORKERS
    await one.aclose()
    assert not feed.full

    feed.notice({})  # nothing changed: no wake-up, no event
    waiting = asyncio.ensure_future(anext(two))
    await asyncio.sleep(0.05)
    feed.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 10)
