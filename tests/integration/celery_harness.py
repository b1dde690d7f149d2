"""What the Celery monitor's integration tests share: brokers, workers, a monitor with its API.

Redis is the machine's (database 7, flushed per test) or a private
``redis-server``; RabbitMQ is the machine's, with queue names unique per test
(deleted afterwards). Missing brokers skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests import conftest

from headrace.api.app import create_app
from headrace.celery_monitor.service import CeleryMonitor
from headrace.server import Server
from headrace.settings import Settings
from headrace.storage import migrate

APP_DIR = Path(__file__).parent / "celery_app"
REDIS_URL = "redis://127.0.0.1:6379/7"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
CELERY = str(Path(sys.executable).parent / "celery")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require_broker(url: str) -> None:
    """Skip (fail under CI) when the broker of ``url`` is not listening."""
    if url.startswith("redis"):
        if not _reachable(6379):
            conftest._missing("Redis on 127.0.0.1:6379")
        import redis

        redis.Redis.from_url(url).flushdb()
    elif not _reachable(5672):
        conftest._missing("RabbitMQ on 127.0.0.1:5672")


def delete_amqp_queues(names: list[str]) -> None:
    from kombu import Connection

    with Connection(AMQP_URL) as conn:
        for name in names:
            channel = conn.channel()
            with contextlib.suppress(*conn.channel_errors):
                channel.queue_delete(name)
            with contextlib.suppress(Exception):
                channel.close()


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str, every: float = 0.2
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


@dataclass
class Harness:
    """A monitor consuming from ``settings.celery_broker_url`` and an API client on the same DB."""

    settings: Settings
    server: Server
    monitor: CeleryMonitor
    client: httpx.AsyncClient

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.client.get(f"/flower/api{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def running_monitor(
    tmp_path: Path, broker_url: str, **overrides: Any
) -> AsyncIterator[Harness]:
    """Migrate a SQLite database, run the monitor service, serve the Flower API in-process."""
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'celery.db'}",
        celery_broker_url=broker_url,
        celery_event_queue=f"hr-test-ev-{uuid.uuid4().hex[:8]}",
        shutdown_timeout=5.0,
        **overrides,
    )
    server = Server(settings, api=True, services=[])
    await migrate.upgrade(server.db)
    monitor = server.celery_monitor
    assert monitor is not None
    task = asyncio.create_task(monitor.run())
    transport = httpx.ASGITransport(app=create_app(server))
    client = httpx.AsyncClient(transport=transport, base_url="http://test")
    try:

        async def connected() -> bool:
            return bool(monitor.status()["connected"])

        await wait_for(connected, 20, "the monitor to connect")
        yield Harness(settings, server, monitor, client)
    finally:
        await client.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        await server.db.dispose()
        if broker_url.startswith("amqp"):
            await asyncio.to_thread(delete_amqp_queues, [settings.celery_event_queue])


def start_worker(
    broker_url: str, queue: str, hostname: str, log: Path, pool: str = "solo"
) -> subprocess.Popen[bytes]:
    """``celery -A tinyapp worker -E --pool=solo`` on ``queue`` as ``hostname``.

    ``pool="prefork"`` runs one child process instead (it can grow and shrink,
    and a running task can be terminated).
    """
    env = {**os.environ, "TINY_BROKER": broker_url, "TINY_QUEUE": queue}
    return subprocess.Popen(
        [
            CELERY,
            "-A",
            "tinyapp",
            "worker",
            "-E",
            f"--pool={pool}",
            "--concurrency=1",
            "-n",
            hostname,
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "-l",
            "warning",
        ],
        cwd=APP_DIR,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client_app(broker_url: str, queue: str) -> Any:
    """A Celery client for the test app's tasks (by name), sending to this test's queue."""
    from celery import Celery

    app = Celery("tiny-client", broker=broker_url, set_as_current=False)
    app.conf.update(task_default_queue=queue, task_send_sent_event=True)
    return app


@contextmanager
def private_redis(port: int) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """A ``redis-server`` this test owns; yields a function that (re)starts it."""
    binary = shutil.which("redis-server")
    if binary is None:
        conftest._missing("redis-server")
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary or "redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while not _reachable(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return process

    try:
        yield start
    finally:
        for process in processes:
            stop(process)
