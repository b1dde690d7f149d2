"""Prometheus metrics: Flower's names, plus the monitor's own health.

Flower's counters that only the event stream can give (``flower_events_total``,
``flower_task_runtime_seconds``, ``flower_task_prefetch_time_seconds``) are kept
by the process that runs the monitor, since it started, in a registry of its
own. The gauges the database can give (workers online, tasks executing,
tasks prefetched) are computed at each scrape, so any API process answers them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from headrace.celery_monitor.fold import TaskRow
from headrace.celery_monitor.normalize import CeleryEvent


class MonitorMetrics:
    """The event-stream metrics of one monitor (Flower's semantics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.events = Counter(
            "flower_events", "Number of events", ["worker", "type", "task"], registry=self.registry
        )
        self.runtime = Histogram(
            "flower_task_runtime_seconds",
            "Task runtime",
            ["worker", "task"],
            registry=self.registry,
        )
        self.prefetch_time = Gauge(
            "flower_task_prefetch_time_seconds",
            "The time the task spent waiting at the celery worker to be executed.",
            ["worker", "task"],
            registry=self.registry,
        )

    def observe(self, events: Iterable[CeleryEvent], tasks: dict[str, TaskRow]) -> None:
        """Count committed task events; ``tasks`` are their rows after the fold."""
        for event in events:
            if event.group != "task":
                continue
            row = tasks.get(event.uuid)
            name = str(event.fields.get("name") or (row.name if row else "") or "")
            self.events.labels(event.hostname, event.type, name).inc()
            runtime = event.fields.get("runtime")
            if isinstance(runtime, int | float) and runtime and math.isfinite(runtime):
                self.runtime.labels(event.hostname, name).observe(float(runtime))
            if row is None or row.eta or not row.received or not row.started:
                continue  # Flower: prefetch only means something without an ETA
            if event.subject == "started":
                self.prefetch_time.labels(event.hostname, name).set(row.started - row.received)
            elif event.subject in ("succeeded", "failed"):
                self.prefetch_time.labels(event.hostname, name).set(0)


class _Families(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def render(
    metrics: MonitorMetrics | None,
    status: dict[str, Any] | None,
    online: dict[str, bool],
    executing: dict[str, int],
    prefetched: list[tuple[str, str, int]],
) -> bytes:
    """The Prometheus text of one scrape.

    Args:
        metrics: the event-stream metrics (None: the monitor runs elsewhere).
        status: ``CeleryMonitor.status()`` (None: the monitor runs elsewhere).
        online: worker -> online now.
        executing: worker -> tasks executing (its last heartbeat's ``active``).
        prefetched: (worker, task name, tasks received and not started, no ETA).
    """
    families: list[Metric] = []
    gauge = GaugeMetricFamily("flower_worker_online", "Worker online status", labels=["worker"])
    for worker, alive in sorted(online.items()):
        gauge.add_metric([worker], 1 if alive else 0)
    families.append(gauge)
    gauge = GaugeMetricFamily(
        "flower_worker_number_of_currently_executing_tasks",
        "Number of tasks currently executing at a worker",
        labels=["worker"],
    )
    for worker, active in sorted(executing.items()):
        gauge.add_metric([worker], active)
    families.append(gauge)
    gauge = GaugeMetricFamily(
        "flower_worker_prefetched_tasks",
        "Number of tasks of given type prefetched at a worker",
        labels=["worker", "task"],
    )
    for worker, task, count in prefetched:
        gauge.add_metric([worker, task], count)
    families.append(gauge)
    if status is not None:
        families.extend(_monitor_families(status))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    text = generate_latest(registry)
    return (generate_latest(metrics.registry) if metrics is not None else b"") + text


def monitor_text(status: dict[str, Any]) -> bytes:
    """The monitor's own families (``headrace_celery_*``), for headrace's ``/metrics``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(_monitor_families(status)))
    return generate_latest(registry)


def _monitor_families(status: dict[str, Any]) -> list[Metric]:
    counters = {
        "events_received": ("events", "Celery events read from the broker"),
        "events_committed": ("events_committed", "Celery events committed to the database"),
        "events_skipped": ("events_skipped", "Celery events of tasks the database refused"),
        "malformed": ("events_malformed", "Celery message items that were not events"),
        "unknown": ("events_unknown", "Celery events of unknown groups (skipped)"),
        "reconnects": ("reconnects", "Reconnections to the Celery broker"),
        "gaps": ("gaps", "Reconnections after which events were lost (Redis pub/sub)"),
    }
    families: list[Metric] = []
    for key, (name, help_text) in counters.items():
        counter = CounterMetricFamily(f"headrace_celery_{name}", help_text)
        counter.add_metric([], status[key])
        families.append(counter)
    gauges = {
        "connected": ("broker_connected", "1 while the monitor is connected to the broker"),
        "backoff_seconds": ("backoff_seconds", "Current wait before the next reconnect"),
        "queue_batches": ("ingest_queue_batches", "Batches read and not yet committed"),
        "queue_events": ("ingest_queue_events", "Events read and not yet committed"),
        "lag_seconds": ("ingest_lag_seconds", "Receipt-to-commit time of the last batch"),
    }
    for key, (name, help_text) in gauges.items():
        gauge = GaugeMetricFamily(f"headrace_celery_{name}", help_text)
        gauge.add_metric([], float(status[key]))
        families.append(gauge)
    return families
