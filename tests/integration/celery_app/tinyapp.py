"""A tiny Celery app for the monitor's tests: ``celery -A tinyapp worker -E``.

The broker and the task queue come from ``TINY_BROKER`` and ``TINY_QUEUE``, so
each test uses its own queue on a shared broker.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("tiny", broker=os.environ.get("TINY_BROKER", "redis://127.0.0.1:6379/7"))
app.conf.update(
    task_default_queue=os.environ.get("TINY_QUEUE", "celery"),
    task_send_sent_event=True,
    worker_send_task_events=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="tiny.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tiny.boom")
def boom(i: int) -> None:
    raise ValueError(f"boom {i}")


@app.task(name="tiny.flaky", bind=True, max_retries=2)
def flaky(self: object, i: int) -> int:
    retries = self.request.retries  # type: ignore[attr-defined]
    if retries < 2:
        raise self.retry(countdown=0.2)  # type: ignore[attr-defined]
    return i


@app.task(name="tiny.sleepy")
def sleepy(i: int) -> int:
    return i


@app.task(name="tiny.nap")
def nap(seconds: float) -> float:
    time.sleep(seconds)  # long enough to be revoked with ``terminate`` while it runs
    return seconds


@app.task(name="tiny.parent")
def parent() -> str:
    return str(add.delay(1, 1).id)
