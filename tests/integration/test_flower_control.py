"""Flower's control API against real Celery workers: prefork on Redis, solo on RabbitMQ.

The Redis is a private ``redis-server`` on a free port, not the machine's
database 7: the machine's is flushed by every other Celery test's setup (those
of other pytest runs too), which would drop this worker's queue bindings midway.

Every call goes through the broker to ``celery -A tinyapp worker`` and is
checked by what the worker then does, as the monitor or ``inspect`` sees it:
rate and time limits set (the worker answers ok; an unknown task is 404),
the pool grows to two processes and shrinks back, a pool restart and autoscale
the worker has not enabled are refused with its reason (403), a revoked task
ends REVOKED once a consumer is added for its queue, the added queue's tasks
run and the cancelled queue is dropped, a running task is terminated with the
signal asked for, and a shut-down worker goes offline and exits 0.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests import conftest
from tests.integration import celery_harness as h

# Real workers: under pytest-xdist, the broker tests share one pytest worker.
pytestmark = pytest.mark.xdist_group("celery-broker")

AUTH = ("ops", "s3cret")


async def _post(harness: h.Harness, path: str, **kwargs: Any) -> httpx.Response:
    return await harness.client.post(f"/flower/api{path}", auth=AUTH, **kwargs)


async def _ok(harness: h.Harness, path: str, **kwargs: Any) -> str:
    response = await _post(harness, path, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"message"}
    return str(body["message"])


async def _state(harness: h.Harness, task_id: str, state: str) -> bool:
    tasks = await harness.get("/tasks")
    return bool(tasks.get(task_id, {}).get("state") == state)


async def _inspect(harness: h.Harness, worker: str) -> dict[str, Any]:
    answer = await harness.get("/workers", refresh="1", workername=worker)
    return dict(answer.get(worker) or {})


async def _processes(harness: h.Harness, worker: str) -> int:
    stats = (await _inspect(harness, worker)).get("stats") or {}
    return len((stats.get("pool") or {}).get("processes") or [])


async def _two(harness: h.Harness, worker: str) -> bool:
    return await _processes(harness, worker) == 2


async def _consumes(harness: h.Harness, worker: str) -> set[str]:
    queues = (await _inspect(harness, worker)).get("active_queues") or []
    return {q["name"] for q in queues}


async def test_control_a_real_worker(tmp_path: Path) -> None:
    port = conftest.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with h.private_redis(port) as start_redis:
        start_redis()
        await _control_a_real_worker(tmp_path, url)


async def _control_a_real_worker(tmp_path: Path, url: str) -> None:
    suffix = uuid.uuid4().hex[:6]
    queue, extra, name = f"hr-ctl-{suffix}", f"hr-ctl-extra-{suffix}", f"ctl@hr{suffix}"
    worker = h.start_worker(url, queue, name, tmp_path / "worker.log", pool="prefork")
    app = h.client_app(url, queue)
    try:
        async with h.running_monitor(tmp_path, url, flower_auth="ops:s3cret") as harness:

            async def online() -> bool:
                return (await harness.get("/workers", status="true")).get(name) is True

            await h.wait_for(online, 60, "the worker online (from events)")

            # Task limits: parameters as a form body, as Flower's docs send them.
            form = {"workername": name, "ratelimit": "100/m"}
            message = await _ok(harness, "/task/rate-limit/tiny.sleepy", data=form)
            assert message == "new rate limit set successfully"
            form = {"workername": name, "soft": "30", "hard": "60"}
            message = await _ok(harness, "/task/timeout/tiny.sleepy", data=form)
            assert message == "time limits set successfully"
            response = await _post(harness, "/task/timeout/tiny.nope", data=form)
            assert (response.status_code, response.json()) == (
                404,
                {"detail": "Unknown task 'tiny.nope'"},
            )

            # The pool: grow to two processes, shrink back to one.
            message = await _ok(harness, f"/worker/pool/grow/{name}", params={"n": "1"})
            assert message == f"Growing '{name}' worker's pool by 1"
            await h.wait_for(lambda: _two(harness, name), 60, "a second pool process")
            message = await _ok(harness, f"/worker/pool/shrink/{name}")
            assert message == f"Shrinking '{name}' worker's pool by 1"

            async def one() -> bool:
                return await _processes(harness, name) == 1

            await h.wait_for(one, 60, "the pool back to one process")

            # What the worker has not enabled is refused with its reason.
            response = await _post(harness, f"/worker/pool/restart/{name}")
            assert response.status_code == 403, response.text
            detail = response.json()["detail"]
            assert detail.startswith(f"Failed to restart the '{name}' pool: ")
            assert "Pool restarts not enabled" in detail
            response = await _post(harness, f"/worker/pool/autoscale/{name}?min=1&max=2")
            assert response.status_code == 403, response.text
            assert "Autoscale not enabled" in response.json()["detail"]

            # Revoke a task nobody consumes yet; then consume its queue: it ends REVOKED,
            # and the queue's next task runs.
            doomed = str(app.send_task("tiny.sleepy", args=(1,), queue=extra).id)
            assert await _ok(harness, f"/task/revoke/{doomed}") == f"Revoked '{doomed}'"
            message = await _ok(harness, f"/worker/queue/add-consumer/{name}?queue={extra}")
            assert message == f"add consumer {extra}"
            await h.wait_for(lambda: _state(harness, doomed, "REVOKED"), 60, "the revoked task")
            runs = str(app.send_task("tiny.add", args=(2, 2), queue=extra).id)
            await h.wait_for(lambda: _state(harness, runs, "SUCCESS"), 60, "a task on the queue")
            message = await _ok(harness, f"/worker/queue/cancel-consumer/{name}?queue={extra}")
            assert message == f"no longer consuming from {extra}"

            async def dropped() -> bool:
                return extra not in await _consumes(harness, name)

            await h.wait_for(dropped, 60, "the worker to stop consuming the extra queue")

            # Terminate a running task with the signal asked for.
            napping = str(app.send_task("tiny.nap", args=(600,)).id)
            await h.wait_for(lambda: _state(harness, napping, "STARTED"), 60, "the nap to start")
            message = await _ok(
                harness, f"/task/revoke/{napping}", data={"terminate": "true", "signal": "KILL"}
            )
            assert message == f"Revoked '{napping}'"
            await h.wait_for(lambda: _state(harness, napping, "REVOKED"), 60, "the terminated nap")

            # Shut the worker down: it goes offline and exits cleanly.
            assert await _ok(harness, f"/worker/shutdown/{name}") == "Shutting down!"

            async def offline() -> bool:
                return (await harness.get("/workers", status="true")).get(name) is False

            await h.wait_for(offline, 60, "the worker offline")
            assert await asyncio.to_thread(worker.wait, 60) == 0
    finally:
        h.stop(worker)


async def test_control_over_amqp(tmp_path: Path) -> None:
    """The same calls through RabbitMQ (queue names unique to this test)."""
    h.require_broker(h.AMQP_URL)
    suffix = uuid.uuid4().hex[:6]
    queue, name = f"hr-ctl-{suffix}", f"ctl@amqp{suffix}"
    worker = h.start_worker(h.AMQP_URL, queue, name, tmp_path / "worker.log")
    try:
        async with h.running_monitor(tmp_path, h.AMQP_URL, flower_auth="ops:s3cret") as harness:

            async def online() -> bool:
                return (await harness.get("/workers", status="true")).get(name) is True

            await h.wait_for(online, 60, "the worker online (from events)")
            form = {"workername": name, "ratelimit": "5/s"}
            message = await _ok(harness, "/task/rate-limit/tiny.add", data=form)
            assert message == "new rate limit set successfully"
            response = await _post(harness, "/task/rate-limit/tiny.nope", data=form)
            assert response.status_code == 404, response.text
            assert await _ok(harness, f"/worker/shutdown/{name}") == "Shutting down!"

            async def offline() -> bool:
                return (await harness.get("/workers", status="true")).get(name) is False

            await h.wait_for(offline, 60, "the worker offline")
            assert await asyncio.to_thread(worker.wait, 60) == 0
    finally:
        h.stop(worker)
        await asyncio.to_thread(h.delete_amqp_queues, [queue])
