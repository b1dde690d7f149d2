"""Celery monitor storage on SQLite and Postgres: folded rows, Flower's list, retention.

No broker: events are built here and written through ``CeleryMonitor.write``,
the same call the service makes for each batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from headrace.celery_monitor import search
from headrace.celery_monitor.normalize import CeleryEvent, parse_event
from headrace.celery_monitor.service import CeleryMonitor
from headrace.settings import Settings
from headrace.storage import celery_tasks, celery_workers
from headrace.storage import tables as t
from headrace.storage.celery_tasks import TaskQuery
from headrace.storage.db import Database

T0 = 1_800_000_000.0


@pytest.fixture
async def monitor(database_url: str, tmp_path: Path) -> AsyncIterator[CeleryMonitor]:
    settings = Settings(home=tmp_path, database_url=database_url, retention_chunk=3)
    database = Database(settings)
    if database.dialect == "postgresql":
        async with database.write() as conn:
            for table in (t.celery_tasks, t.celery_task_types, t.celery_workers):
                await conn.execute(sa.delete(table))
    try:
        yield CeleryMonitor(database, settings)
    finally:
        await database.dispose()


def event(
    kind: str, uuid: str = "", ts: float = T0, host: str = "w1@h", **fields: Any
) -> CeleryEvent:
    body = {"type": kind, "uuid": uuid, "hostname": host, "timestamp": ts, **fields}
    parsed = parse_event(body, ts + 0.01, 4096)
    assert isinstance(parsed, CeleryEvent)
    return parsed


def lifecycle(
    uuid: str, name: str, ts: float, end: str, host: str = "w1@h", **spec: Any
) -> list[CeleryEvent]:
    spec = {"name": name, "args": "()", "kwargs": "{}", "retries": 0, **spec}
    events = [
        event("task-sent", uuid, ts, host="client@h", **spec),
        event("task-received", uuid, ts + 1, host=host, **spec),
    ]
    if end == "received":
        return events
    events.append(event("task-started", uuid, ts + 2, host=host))
    if end == "succeeded":
        events.append(event("task-succeeded", uuid, ts + 3, host=host, result="'ok'", runtime=1.0))
    elif end == "failed":
        events.append(
            event(
                "task-failed", uuid, ts + 3, host=host, exception="ValueError('x')", traceback="TB"
            )
        )
    return events


async def _tasks(monitor: CeleryMonitor, **query: Any) -> list[str]:
    async with monitor.db.read() as conn:
        return [row.uuid for row in await celery_tasks.list_tasks(conn, TaskQuery(**query))]


async def test_batches_fold_into_the_stored_rows(monitor: CeleryMonitor) -> None:
    events = lifecycle("a", "tiny.add", T0, "succeeded")
    # Out of order and across batches, with a duplicate.
    await monitor.write([events[3], events[1]])
    await monitor.write([events[0], events[3], events[2]])

    async with monitor.db.read() as conn:
        row = await celery_tasks.get_task(conn, "a")
        types = await celery_tasks.task_types(conn)
        (worker,) = await celery_workers.list_workers(conn)
    assert (row.state, row.name, row.result, row.runtime) == ("SUCCESS", "tiny.add", "'ok'", 1.0)
    assert (row.worker, row.client, row.received, row.started) == (
        "w1@h",
        "client@h",
        T0 + 1,
        T0 + 2,
    )
    assert types == ["tiny.add"]
    assert worker.row.hostname == "w1@h"
    assert worker.row.heartbeat == pytest.approx(T0 + 3.01)


async def test_unknown_fields_read_back_as_null(monitor: CeleryMonitor) -> None:
    await monitor.write([event("task-started", "s", T0)])

    async with monitor.db.read() as conn:
        row = await celery_tasks.get_task(conn, "s")
        with pytest.raises(Exception, match="Unknown task 'nope'"):
            await celery_tasks.get_task(conn, "nope")
    assert (row.name, row.received, row.started, row.state) == (None, None, T0, "STARTED")


async def test_long_and_odd_texts_are_stored(monitor: CeleryMonitor) -> None:
    args = "(" + "é" * 10_000 + ")"
    await monitor.write(
        [event("task-received", "big", T0, name="n\x00", args=args, kwargs={"k": [1, 2]})]
    )

    async with monitor.db.read() as conn:
        row = await celery_tasks.get_task(conn, "big")
    assert row.args is not None and row.args.endswith("[truncated by headrace: 20002 bytes in all]")
    assert (row.name, row.kwargs) == ("n\\x00", "{'k': [1, 2]}")


async def _fill(monitor: CeleryMonitor) -> None:
    events = [
        *lifecycle("t1", "tiny.add", T0, "succeeded", args="(1, 2)", kwargs="{'user': 'bob'}"),
        *lifecycle("t2", "tiny.add", T0 + 10, "failed", host="w2@h"),
        *lifecycle("t3", "tiny.boom", T0 + 20, "failed", kwargs="{'user': 'bobby', 'n': 1}"),
        *lifecycle("t4", "tiny.sleepy", T0 + 30, "received", eta="2030-01-01T00:00:00"),
        event("task-sent", "t5", T0 + 40, host="client@h", name="tiny.add", parent_id="t1"),
    ]
    await monitor.write(events)


async def test_filters(monitor: CeleryMonitor) -> None:
    await _fill(monitor)

    assert await _tasks(monitor) == ["t5", "t4", "t3", "t2", "t1"]  # newest state change first
    assert await _tasks(monitor, state="failure") == ["t3", "t2"]
    assert await _tasks(monitor, name="tiny.add") == ["t5", "t2", "t1"]
    assert await _tasks(monitor, worker="w2@h") == ["t2"]
    # Tasks not received yet pass a received range, as in Flower.
    assert await _tasks(monitor, received_start=T0 + 15) == ["t5", "t4", "t3"]
    assert await _tasks(monitor, received_end=T0 + 15) == ["t5", "t2", "t1"]
    assert await _tasks(monitor, limit=2, offset=1) == ["t4", "t3"]
    assert await _tasks(monitor, limit=0) == []
    assert await _tasks(monitor, offset=4) == ["t1"]


async def test_sorts_put_unknown_values_first_when_ascending(monitor: CeleryMonitor) -> None:
    await _fill(monitor)

    assert await _tasks(monitor, sort_by="received") == ["t5", "t1", "t2", "t3", "t4"]
    assert await _tasks(monitor, sort_by="received", descending=True) == [
        "t4",
        "t3",
        "t2",
        "t1",
        "t5",
    ]
    assert await _tasks(monitor, sort_by="started") == ["t4", "t5", "t1", "t2", "t3"]
    assert await _tasks(monitor, sort_by="name", limit=3) == ["t1", "t2", "t5"]
    assert await _tasks(monitor, sort_by="state", descending=True, limit=2) == ["t1", "t4"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("boom", ["t3"]),
        ("BOOM", ["t3"]),
        ("state:failure", ["t3", "t2"]),
        ('args:"(1,"', ["t1"]),
        ("name:sleepy OR worker:w2@h", ["t4", "t2"]),
        ("tiny.add failure", ["t2"]),
        ("kwargs:user=bob", ["t1"]),
        ("kwargs:n=1", ["t3"]),
        ("result:'ok'", ["t1"]),
        ("100%", []),
        ("tiny_add", []),
    ],
)
async def test_search(monitor: CeleryMonitor, query: str, expected: list[str]) -> None:
    await _fill(monitor)

    assert await _tasks(monitor, search=search.parse(query)) == expected


async def test_children(monitor: CeleryMonitor) -> None:
    await _fill(monitor)

    async with monitor.db.read() as conn:
        assert await celery_tasks.children_of(conn, ["t1", "t2"]) == {"t1": ["t5"]}
        assert await celery_tasks.task_types(conn) == ["tiny.add", "tiny.boom", "tiny.sleepy"]


async def test_retention_trims_in_chunks(monitor: CeleryMonitor) -> None:
    old = T0 - 30 * 86400
    events = [event("task-received", f"old{i}", old + i, name="tiny.add") for i in range(7)]
    events += [event("worker-heartbeat", "", old, host="gone@h", freq=2.0)]
    await monitor.write(events)
    await _fill(monitor)

    assert await monitor.trim(now=T0 + 100) == (7, 1)  # chunks of 3
    assert sorted(await _tasks(monitor)) == ["t1", "t2", "t3", "t4", "t5"]
    async with monitor.db.read() as conn:
        hosts = [w.row.hostname for w in await celery_workers.list_workers(conn)]
    assert hosts == ["w1@h", "w2@h"]


async def test_inspect_answers_survive_event_updates(monitor: CeleryMonitor) -> None:
    await monitor.write([event("worker-online", "", T0, freq=2.0, processed=0)])
    async with monitor.db.write() as conn:
        await celery_workers.save_info(
            conn, {"w1@h": {"stats": {"pid": 1}}, "quiet@h": {"registered": ["a"]}}, T0
        )
    await monitor.write([event("worker-heartbeat", "", T0 + 2, freq=2.0, processed=5)])

    async with monitor.db.read() as conn:
        workers = {w.row.hostname: w for w in await celery_workers.list_workers(conn)}
        (one,) = await celery_workers.list_workers(conn, "w1@h")
    assert workers["w1@h"].info == {"stats": {"pid": 1}, "timestamp": T0}
    assert workers["w1@h"].row.processed == 5
    assert workers["quiet@h"].info == {"registered": ["a"], "timestamp": T0}
    assert workers["quiet@h"].row.heartbeat is None
    assert one.row.hostname == "w1@h"
