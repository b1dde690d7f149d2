"""``/metrics``: headrace's own Prometheus metrics, read from the live server."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer


def _samples(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _wait(server: RunningServer, name: str, labels: dict[str, str], value: float) -> None:
    key = (name, tuple(sorted(labels.items())))
    deadline = time.monotonic() + 20
    while _samples(server).get(key) != value:
        assert time.monotonic() < deadline, f"{name}{labels} never reached {value}"
        time.sleep(0.2)


def test_metrics_follow_the_pipeline_and_the_services(sqlite_server: RunningServer) -> None:
    _wait(sqlite_server, "headrace_service_lease_held", {"service": "scheduler"}, 1.0)
    _wait(sqlite_server, "headrace_service_running", {"service": "late-runs"}, 1.0)
    before = _samples(sqlite_server)
    persisted = ("headrace_events_persisted_total", ())
    assert before[("headrace_events_queue_depth", ())] >= 0

    with httpx.Client(base_url=sqlite_server.api_url + "/") as http:
        flow = http.post("flows/", json={"name": "metrics-flow"}).json()
        run = http.post("flow_runs/", json={"flow_id": flow["id"]}).json()
        moved = http.post(
            f"flow_runs/{run['id']}/set_state",
            json={"state": {"type": "RUNNING", "name": "Running"}},
        )
        assert moved.status_code == 201
    # The server's prefect.flow-run.Running event goes through the pipeline.
    deadline = time.monotonic() + 20
    while _samples(sqlite_server)[persisted] <= before[persisted]:
        assert time.monotonic() < deadline, "the state event was never counted as persisted"
        time.sleep(0.2)
    after = _samples(sqlite_server)
    assert (
        after[("headrace_event_batches_total", ())] > before[("headrace_event_batches_total", ())]
    )
    assert after[("headrace_service_restarts_total", (("service", "scheduler"),))] == 0
