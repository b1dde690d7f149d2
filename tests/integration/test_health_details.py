"""``/api/health/details`` shows the Celery monitor's connection and backoff.

``/api/health`` stays exactly ``true`` throughout (the Prefect client compares
it). The monitor's Redis (a private ``redis-server``) is stopped and started
again: the details show the lost connection with its error and the wait
before the next attempt, then the reconnect and the gap it counted; the
Prometheus text carries the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests import conftest
from tests.integration import celery_harness as h

from headrace.api.app import create_app
from headrace.server import Server
from headrace.settings import Settings


async def test_details_without_a_broker(tmp_path: Path) -> None:
    server = Server(Settings(home=tmp_path), api=True, services=[])
    transport = httpx.ASGITransport(app=create_app(server))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            health = await client.get("/api/health")
            assert (health.status_code, health.content) == (200, b"true")
            details = (await client.get("/api/health/details")).json()
    finally:
        await server.db.dispose()
    assert details["celery_monitor"] is None
    assert details["database"] == {"reachable": True}
    assert details["healthy"] is True
    assert "event-pipeline" in details["services"]


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.xdist_group("celery-broker")
async def test_monitor_reconnect_state_in_details(tmp_path: Path) -> None:
    port = conftest.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with h.private_redis(port) as start_redis:
        redis = start_redis()
        async with h.running_monitor(tmp_path, url, celery_reconnect_max_seconds=30.0) as harness:
            client = harness.client

            async def details() -> dict[str, Any]:
                response = await client.get("/api/health/details")
                assert response.status_code == 200, response.text
                return dict(response.json()["celery_monitor"])

            status = await details()
            assert (status["connected"], status["reconnects"], status["gaps"]) == (True, 0, 0)
            assert status["backoff_seconds"] == 0.0 and status["last_error"] is None
            assert {"lag_seconds", "events_received", "events_committed"} <= set(status)

            h.stop(redis)

            async def waiting() -> dict[str, Any] | None:
                status = await details()
                lost = not status["connected"] and status["backoff_seconds"] > 0
                return status if lost and status["last_error"] else None

            status = await h.wait_for(waiting, 60, "the details to show the lost broker")
            assert (await client.get("/api/health")).content == b"true"
            metrics = (await client.get("/metrics")).text
            assert _metric(metrics, "headrace_celery_broker_connected") == 0
            assert _metric(metrics, "headrace_celery_backoff_seconds") > 0

            start_redis()

            async def back() -> dict[str, Any] | None:
                status = await details()
                return status if status["connected"] else None

            # The first waits are 0.5-1 s, 1-2 s, 2-4 s ...: generous for a slow machine.
            status = await h.wait_for(back, 90, "the monitor to reconnect")
            assert (status["reconnects"], status["gaps"], status["backoff_seconds"]) == (1, 1, 0.0)
            metrics = (await client.get("/metrics")).text
            assert _metric(metrics, "headrace_celery_reconnects_total") == 1
            assert _metric(metrics, "headrace_celery_backoff_seconds") == 0
            assert (await client.get("/api/health")).content == b"true"
