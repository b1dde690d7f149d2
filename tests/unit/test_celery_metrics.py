"""``/flower/metrics`` text: Flower's metric names from events and rows, the monitor's own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from headrace.celery_monitor.fold import fold_tasks
from headrace.celery_monitor.metrics import MonitorMetrics, render
from headrace.celery_monitor.normalize import CeleryEvent

STATUS = {
    "connected": True,
    "reconnects": 1,
    "gaps": 1,
    "backoff_seconds": 0.0,
    "events_received": 5,
    "events_committed": 4,
    "events_skipped": 0,
    "malformed": 1,
    "unknown": 0,
    "queue_batches": 2,
    "queue_events": 1,
    "lag_seconds": 0.25,
}


def ev(subject: str, ts: float, **fields: object) -> CeleryEvent:
    return CeleryEvent("task", subject, "w1@h", ts, ts, 0, "t1", fields)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_events_runtime_and_prefetch_time() -> None:
    metrics = MonitorMetrics()
    events = [
        ev("received", 1.0, name="tiny.add"),
        ev("started", 1.5),
        ev("succeeded", 2.0, runtime=0.5),
    ]
    metrics.observe(events, fold_tasks({}, events))

    found = samples(render(metrics, STATUS, {}, {}, []))

    task = (("task", "tiny.add"), ("worker", "w1@h"))
    assert found[("flower_events_total", (*task[:1], ("type", "task-started"), task[1]))] == 1
    assert found[("flower_task_runtime_seconds_count", task)] == 1
    assert found[("flower_task_runtime_seconds_sum", task)] == 0.5
    assert found[("flower_task_prefetch_time_seconds", task)] == 0  # reset once it finished
    assert found[("headrace_celery_gaps_total", ())] == 1
    assert found[("headrace_celery_ingest_queue_batches", ())] == 2
    assert found[("headrace_celery_ingest_queue_events", ())] == 1
    assert found[("headrace_celery_broker_connected", ())] == 1


def test_without_the_monitor_in_this_process_only_database_gauges() -> None:
    found = samples(render(None, None, {"a@h": True, "b@h": False}, {"a@h": 3}, [("a@h", "x", 2)]))

    assert found == {
        ("flower_worker_online", (("worker", "a@h"),)): 1,
        ("flower_worker_online", (("worker", "b@h"),)): 0,
        ("flower_worker_number_of_currently_executing_tasks", (("worker", "a@h"),)): 3,
        ("flower_worker_prefetched_tasks", (("task", "x"), ("worker", "a@h"))): 2,
    }
