"""The Celery monitor against real brokers: real workers, a broker outage, bad messages.

* Real workers (``celery -A tinyapp worker -E --pool=solo``) on Redis and on
  RabbitMQ: tasks that succeed, fail, retry, are revoked before their ETA or
  wait on a long ETA all reach the right final state, and Flower's read API
  answers about them (filters, counts per worker, info, types, workers, queue
  lengths) and ``/flower/metrics`` counts them; a worker killed without a
  goodbye shows offline once its heartbeat expires.
* RabbitMQ with the database stalled: the monitor holds no more than its bound
  (the prefetch), the broker keeps the backlog, and all of it is committed (and
  acknowledged) once the database is back.
* A private ``redis-server`` stopped for 10 s and started again: the monitor
  reconnects within its backoff cap, counts the gap, and loses nothing
  published before the outage or after it is back.
* Bad messages among good ones: undecodable, not an event, unknown types, huge
  args; they are counted, the good events around them are committed.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests import conftest
from tests.integration import celery_harness as h

from headrace.storage import celery_tasks
from headrace.storage.celery_tasks import TaskQuery

# One broker (Redis db 7, RabbitMQ): under pytest-xdist these tests share a worker.
pytestmark = pytest.mark.xdist_group("celery-broker")

BROKERS = {"redis": h.REDIS_URL, "amqp": h.AMQP_URL}


@pytest.fixture(params=list(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    url = BROKERS[request.param]
    h.require_broker(url)
    return url


async def _states(harness: h.Harness) -> dict[str, Any]:
    async with harness.server.db.read() as conn:
        rows = await celery_tasks.list_tasks(conn, TaskQuery())
    return {row.uuid: row for row in rows}


async def test_real_workers(broker_url: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:6]
    queue = f"hr-test-{suffix}"
    w1, w2 = f"w1@hr{suffix}", f"w2@hr{suffix}"
    workers = [
        h.start_worker(broker_url, queue, name, tmp_path / "workers.log") for name in (w1, w2)
    ]
    app = h.client_app(broker_url, queue)
    try:
        async with h.running_monitor(tmp_path, broker_url) as harness:

            async def both_online() -> bool:
                status = await harness.get("/workers", status="true")
                return status.get(w1) is True and status.get(w2) is True

            await h.wait_for(both_online, 60, "both workers online (from events)")

            def send(name: str, *args: Any, **options: Any) -> str:
                return str(app.send_task(name, args=args, **options).id)

            adds = [send("tiny.add", i, i) for i in range(30)]
            booms = [send("tiny.boom", i) for i in range(6)]
            flakies = [send("tiny.flaky", i) for i in range(4)]
            revoked = [send("tiny.sleepy", i, countdown=2) for i in range(3)]
            for task_id in revoked:
                app.control.revoke(task_id)
            waiting = send("tiny.sleepy", 99, countdown=3600)
            parent = send("tiny.parent")
            expected = {
                **dict.fromkeys(adds + flakies + [parent], "SUCCESS"),
                **dict.fromkeys(booms, "FAILURE"),
                **dict.fromkeys(revoked, "REVOKED"),
                waiting: "RECEIVED",
            }

            async def settled() -> bool:
                rows = await _states(harness)
                return all(rows.get(k) and rows[k].state == v for k, v in expected.items()) and (
                    len(rows) == len(expected) + 1  # the parent's child
                    and all(r.state == "SUCCESS" for k, r in rows.items() if k not in expected)
                )

            await h.wait_for(settled, 60, "every task's final state")
            await _check_api(harness, expected, adds, booms, flakies, revoked, waiting, parent)
            await _check_workers(harness, queue, w1, w2)
            await _check_metrics(harness, w1, w2, len(adds) + 1)

            # Killed without a goodbye: offline once the heartbeat (2 s) expires (x2).
            workers[1].send_signal(signal.SIGKILL)
            workers[1].wait(10)
            killed = time.monotonic()

            async def w2_offline() -> bool:
                status = await harness.get("/workers", status="true")
                return status.get(w2) is False and status.get(w1) is True

            await h.wait_for(w2_offline, 15, "the killed worker to show offline")
            assert time.monotonic() - killed < 10
    finally:
        for process in workers:
            h.stop(process)
        if broker_url.startswith("amqp"):
            await asyncio.to_thread(h.delete_amqp_queues, [queue])


async def _check_api(
    harness: h.Harness,
    expected: dict[str, str],
    adds: list[str],
    booms: list[str],
    flakies: list[str],
    revoked: list[str],
    waiting: str,
    parent: str,
) -> None:
    tasks = await harness.get("/tasks")
    assert len(tasks) == len(expected) + 1
    assert {k: v["state"] for k, v in tasks.items() if k in expected} == expected
    assert set(await harness.get("/tasks", state="FAILURE")) == set(booms)
    assert set(await harness.get("/tasks", taskname="tiny.boom")) == set(booms)
    assert set(await harness.get("/tasks", taskname="tiny.add")) >= set(adds)
    per_worker = {t["worker"] for t in tasks.values()}
    counted = 0
    for worker in per_worker:
        mine = await harness.get("/tasks", workername=worker)
        assert set(mine) == {k for k, v in tasks.items() if v["worker"] == worker}
        counted += len(mine)
    assert counted == len(tasks)
    assert len(await harness.get("/tasks", limit=5, offset=0)) == 5
    newest = list((await harness.get("/tasks", sort_by="-received", limit=3)).values())
    assert [t["received"] for t in newest] == sorted((t["received"] for t in newest), reverse=True)
    assert (await harness.client.get("/flower/api/tasks?sort_by=bogus")).status_code == 400

    failed = await harness.get(f"/task/info/{booms[0]}")
    assert failed["state"] == "FAILURE"
    assert failed["exception"] == "ValueError('boom 0')"
    assert "ValueError: boom 0" in failed["traceback"]
    assert (failed["args"], failed["kwargs"], failed["name"]) == ("(0,)", "{}", "tiny.boom")
    assert all(failed[k] for k in ("sent", "received", "started", "failed", "worker", "client"))
    flaky = await harness.get(f"/task/info/{flakies[0]}")
    assert (flaky["state"], flaky["retries"]) == ("SUCCESS", 2)
    assert flaky["retried"] and flaky["result"] == "0"
    gone = await harness.get(f"/task/info/{revoked[0]}")
    assert (gone["state"], gone["started"]) == ("REVOKED", None)
    assert gone["revoked"] and gone["eta"]
    later = await harness.get(f"/task/info/{waiting}")
    assert (later["state"], later["started"]) == ("RECEIVED", None)
    assert later["eta"]
    family = await harness.get(f"/task/info/{parent}")
    (child,) = family["children"]
    assert (await harness.get(f"/task/info/{child}"))["parent_id"] == parent
    missing = await harness.client.get("/flower/api/task/info/no-such-task")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Unknown task 'no-such-task'"}
    types = await harness.get("/task/types")
    assert set(types["task-types"]) >= {
        "tiny.add",
        "tiny.boom",
        "tiny.flaky",
        "tiny.sleepy",
        "tiny.parent",
    }


async def _check_workers(harness: h.Harness, queue: str, w1: str, w2: str) -> None:
    listed = await harness.get("/workers")
    assert {w1, w2} <= set(listed)
    assert listed[w1]["status"] is True
    assert listed[w1]["heartbeat"]["processed"] is not None
    refreshed = await harness.get("/workers", refresh="1")
    for name in (w1, w2):
        assert "tiny.add" in refreshed[name]["registered"]
        assert refreshed[name]["stats"]["pool"]["max-concurrency"] == 1
        assert [q["name"] for q in refreshed[name]["active_queues"]] == [queue]
    one = await harness.get("/workers", workername=w1, refresh="true")
    assert set(one) == {w1}
    assert "active" in one[w1] and "reserved" in one[w1]
    unknown = await harness.client.get("/flower/api/workers", params={"workername": "nobody@x"})
    assert unknown.status_code == 404
    lengths = await harness.get("/queues/length")
    assert lengths == {"active_queues": [{"name": queue, "messages": 0}]}


async def _check_metrics(harness: h.Harness, w1: str, w2: str, adds: int) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = await harness.client.get("/flower/metrics")
    assert response.status_code == 200
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)

    def total(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in samples.get(name, [])
            if all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert total("flower_events_total", type="task-succeeded", task="tiny.add") == adds
    assert total("flower_events_total", type="task-failed", task="tiny.boom") == 6
    assert total("flower_task_runtime_seconds_count", task="tiny.add") == adds
    assert total("flower_worker_online", worker=w1) == total("flower_worker_online", worker=w2) == 1
    assert "flower_worker_number_of_currently_executing_tasks" in samples
    assert "flower_task_prefetch_time_seconds" in samples
    assert total("headrace_celery_gaps_total") == 0
    assert total("headrace_celery_broker_connected") == 1
    assert total("headrace_celery_events_committed_total") > 0


def _publish_lifecycles(url: str, prefix: str, count: int) -> list[str]:
    """Task events of ``count`` successful tasks, sent with Celery's own dispatcher."""
    from celery import Celery

    app = Celery("outage", broker=url, set_as_current=False)
    ids = [f"{prefix}-{i}" for i in range(count)]
    with app.connection_for_write() as conn:
        dispatcher = app.events.Dispatcher(conn, hostname="fake@outage", enabled=True)
        for task_id in ids:
            dispatcher.send("task-received", uuid=task_id, name="tiny.add", args="(1, 1)")
            dispatcher.send("task-started", uuid=task_id)
            dispatcher.send("task-succeeded", uuid=task_id, result="2", runtime=0.01)
        dispatcher.close()
    return ids


async def test_redis_outage(tmp_path: Path) -> None:
    port = conftest.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with h.private_redis(port) as start_redis:
        server = start_redis()
        async with h.running_monitor(tmp_path, url, celery_reconnect_max_seconds=2.0) as harness:
            before = await asyncio.to_thread(_publish_lifecycles, url, "before", 50)

            async def all_succeeded(ids: list[str]) -> bool:
                rows = await _states(harness)
                return all(rows.get(i) and rows[i].state == "SUCCESS" for i in ids)

            await h.wait_for(lambda: all_succeeded(before), 20, "the events before the outage")

            h.stop(server)
            await asyncio.sleep(10)
            status = harness.monitor.status()
            assert status["connected"] is False and status["last_error"]
            # The API answers from the database meanwhile.
            assert len(await harness.get("/tasks")) == 50
            start_redis()
            back = time.monotonic()

            async def reconnected() -> bool:
                return bool(harness.monitor.status()["connected"])

            await h.wait_for(reconnected, 10, "the monitor to reconnect")
            assert time.monotonic() - back < 2.0 + 3.0  # the cap, plus connecting
            after = await asyncio.to_thread(_publish_lifecycles, url, "after", 50)
            await h.wait_for(lambda: all_succeeded(before + after), 20, "events after the outage")

            status = harness.monitor.status()
            assert (status["gaps"], status["reconnects"]) == (1, 1)
            assert status["backoff_seconds"] == 0.0
            assert len(await harness.get("/tasks")) == 100


def _ready_messages(queue: str) -> int:
    from kombu import Connection

    with Connection(h.AMQP_URL) as conn:
        return int(conn.channel().queue_declare(queue=queue, passive=True).message_count)


async def test_amqp_backlog_stays_in_the_broker_until_committed(tmp_path: Path) -> None:
    """A stalled database: the monitor takes no more than its bound; RabbitMQ holds the rest."""
    h.require_broker(h.AMQP_URL)
    async with h.running_monitor(
        tmp_path, h.AMQP_URL, celery_queue_size=20, celery_enable_events=False
    ) as harness:
        queue = harness.settings.celery_event_queue
        async with harness.server.db._write_lock:  # SQLite's writer: no commit can happen
            await asyncio.to_thread(_publish_lifecycles, h.AMQP_URL, "held", 100)

            async def backlog() -> int:
                return await asyncio.to_thread(_ready_messages, queue)

            # 300 messages: at most 20 in flight (the prefetch), the rest wait in the broker.
            assert await h.wait_for(lambda: _at_least(backlog, 280), 10, "the backlog") >= 280
            await asyncio.sleep(0.5)
            assert await backlog() >= 280
        rows = await h.wait_for(lambda: _committed(harness, 100), 30, "every task committed")
        assert all(row.state == "SUCCESS" for row in rows.values())
        await h.wait_for(lambda: _at_most(backlog, 0), 10, "the queue drained")


async def _at_least(count: Any, floor: int) -> int:
    value = int(await count())
    return value if value >= floor else 0


async def _at_most(count: Any, ceiling: int) -> bool:
    return int(await count()) <= ceiling


async def _committed(harness: h.Harness, expected: int) -> dict[str, Any]:
    rows = await _states(harness)
    done = {k: r for k, r in rows.items() if r.state == "SUCCESS"}
    return done if len(done) >= expected else {}


def _publish_raw(url: str, big_args: str) -> None:
    """Bad messages around good ones, straight onto the events exchange."""
    from celery import Celery
    from celery.events.event import get_exchange
    from kombu import Producer

    good = {"type": "task-received", "uuid": "good-1", "hostname": "raw@h", "name": "tiny.add"}
    app = Celery("raw", broker=url, set_as_current=False)
    with app.connection_for_write() as conn:
        producer = Producer(conn.channel(), exchange=get_exchange(conn))
        raw: list[tuple[Any, str]] = [
            (b"{not json", "application/json"),
            (b"\x80\x04pickled", "application/x-python-serialize"),
            (b'"just a string"', "application/json"),
        ]
        for body, content_type in raw:
            producer.publish(
                body, routing_key="task.x", content_type=content_type, content_encoding="binary"
            )
        events: list[Any] = [
            good,
            [{"type": "task-started", "uuid": "good-1", "hostname": "raw@h"}, {"no": "type"}],
            {"type": "custom-thing", "hostname": "raw@h"},
            {"type": "task-received", "hostname": "raw@h"},
            {"type": "task-received", "uuid": "big", "hostname": "raw@h", "args": big_args},
            {"type": "task-received", "uuid": "nul", "hostname": "raw@h", "args": "a\x00b"},
            {"type": "task-succeeded", "uuid": "good-1", "hostname": "raw@h", "result": "2"},
        ]
        for event in events:
            producer.publish(event, routing_key="task.x", serializer="json")


async def test_bad_messages_are_counted_and_the_rest_committed(tmp_path: Path) -> None:
    h.require_broker(h.REDIS_URL)
    async with h.running_monitor(
        tmp_path, h.REDIS_URL, celery_max_field_bytes=4096, celery_enable_events=False
    ) as harness:
        big_args = "(" + "x" * 300_000 + ",)"
        await asyncio.to_thread(_publish_raw, h.REDIS_URL, big_args)

        async def committed() -> bool:
            rows = await _states(harness)
            return (
                rows.get("good-1") is not None
                and rows["good-1"].state == "SUCCESS"
                and len(rows) == 3
            )

        await h.wait_for(committed, 20, "the good events")
        status = harness.monitor.status()
        assert (status["malformed"], status["unknown"]) == (5, 1)
        big = await harness.get("/task/info/big")
        assert big["args"].endswith(f"…[truncated by headrace: {len(big_args)} bytes in all]")
        assert len(big["args"]) < 4200
        assert (await harness.get("/task/info/nul"))["args"] == "a\\x00b"

        for params, message in [
            ("limit=x", "Invalid argument 'x' of type 'int'"),
            ("sort_by=runtime", "Invalid sort_by 'runtime'"),
            ("received_start=2026", "expected format 'YYYY-MM-DD HH:MM'"),
        ]:
            response = await harness.client.get(f"/flower/api/tasks?{params}")
            assert response.status_code == 400
            assert message in response.json()["detail"]
        response = await harness.client.get("/flower/api/tasks", params={"search": "ab"})
        assert response.status_code == 400
        assert "at least 3 characters" in response.json()["error"]
        response = await harness.client.get("/flower/api/workers?status=maybe")
        assert response.status_code == 400
