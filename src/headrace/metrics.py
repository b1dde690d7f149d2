"""headrace's own Prometheus metrics, read from the live objects at scrape time.

Nothing on a hot path increments a Prometheus metric: the parts keep plain
counters and timestamps (the event pipeline, the services, the bus, the task
queue), and one collector turns them into families when ``/metrics`` is read.
A scrape therefore costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from headrace.server import Server


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text)
    family.add_metric([], value)
    return family


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text)
    family.add_metric([], value)
    return family


class ServerCollector(Collector):
    """The families of one ``Server``."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        yield from self._pipeline()
        yield from self._services()
        yield from self._messaging()

    def _pipeline(self) -> Iterator[Metric]:
        p = self.server.pipeline
        yield _counter(
            "headrace_events_received", "Events accepted into the ingest queue", p.received
        )
        yield _counter("headrace_events_persisted", "Events committed to the database", p.persisted)
        yield _counter("headrace_events_duplicates", "Events already stored (resent)", p.duplicates)
        yield _counter("headrace_events_rejected", "Events that could not be stored", p.rejected)
        yield _counter("headrace_event_batches", "Group commits of the event pipeline", p.batches)
        yield _counter(
            "headrace_event_write_failures", "Failed event batch writes (retried)", p.write_failures
        )
        yield _gauge("headrace_events_queue_depth", "Events waiting to be committed", p.depth)
        yield _gauge(
            "headrace_event_last_flush_seconds",
            "Duration of the last group commit",
            p.last_flush_seconds,
        )
        yield _gauge(
            "headrace_events_out_subscribers",
            "Live /events/out subscribers",
            self.server.broadcaster.subscriber_count,
        )

    def _services(self) -> Iterator[Metric]:
        server = self.server
        running = GaugeMetricFamily(
            "headrace_service_running",
            "1 while the service runs in this process",
            labels=["service"],
        )
        restarts = CounterMetricFamily(
            "headrace_service_restarts", "Restarts after a crash", labels=["service"]
        )
        for name, state in server.supervisor.services.items():
            running.add_metric([name], 1.0 if state.task is not None else 0.0)
            restarts.add_metric([name], state.restarts)
        yield running
        yield restarts
        last_run = GaugeMetricFamily(
            "headrace_service_last_run_timestamp_seconds",
            "When the service's last pass started (0: never here)",
            labels=["service"],
        )
        lag = GaugeMetricFamily(
            "headrace_service_lag_seconds",
            "How late the last pass ran after the moment it was due",
            labels=["service"],
        )
        duration = GaugeMetricFamily(
            "headrace_service_last_pass_seconds", "Duration of the last pass", labels=["service"]
        )
        for service in (
            server.late_runs,
            server.pause_expirations,
            server.cancellation_cleanup,
            server.lease_expiry,
            server.task_redelivery,
        ):
            last_run.add_metric([service.name], _timestamp(service.last_run))
            lag.add_metric([service.name], service.last_lag)
            duration.add_metric([service.name], service.last_pass_seconds)
        last_run.add_metric(["scheduler"], _timestamp(server.scheduler.last_pass))
        duration.add_metric(["scheduler"], server.scheduler.last_pass_seconds)
        last_run.add_metric(["retention"], _timestamp(server.retention.last_run))
        yield last_run
        yield lag
        yield duration
        yield _counter(
            "headrace_scheduler_runs_created",
            "Runs the scheduler materialised",
            server.scheduler.runs_created,
        )
        yield _counter(
            "headrace_service_transitions",
            "Flow-run state changes written by the flow-run services",
            sum(s.transitions for s in server._flow_run_services()),
        )
        held = GaugeMetricFamily(
            "headrace_service_lease_held",
            "1 while this process holds the service's lease",
            labels=["service"],
        )
        if server.leases is not None:
            for name in server.leases.names:
                held.add_metric([name], 1.0 if name in server.leases.held else 0.0)
        yield held

    def _messaging(self) -> Iterator[Metric]:
        server = self.server
        bus: Any = server.bus
        yield _counter("headrace_bus_published", "Notices published on the bus", bus.published)
        yield _counter(
            "headrace_bus_received", "Notices received from other processes", bus.received
        )
        yield _counter(
            "headrace_bus_reconnects",
            "Reconnections of the cross-process bus",
            getattr(bus, "reconnects", 0),
        )
        yield _counter(
            "headrace_event_relay_relayed",
            "Events relayed from other processes",
            server.relay.relayed,
        )
        queue = server.task_queue
        yield _gauge(
            "headrace_task_subscriptions", "Task-worker subscriptions here", queue.subscriptions
        )
        yield _counter(
            "headrace_task_runs_delivered", "Background task runs pushed", queue.delivered
        )
        yield _counter(
            "headrace_task_runs_requeued", "Pushed runs put back in the queue", queue.released
        )
        yield _gauge(
            "headrace_concurrency_waiters",
            "Requests held for a concurrency slot",
            server.slot_waiters.waiting,
        )


def render(server: Server) -> bytes:
    """The Prometheus text of one scrape (plus the Celery monitor's own, when it runs here)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(server))
    text = generate_latest(registry)
    monitor = server.celery_monitor
    if monitor is not None:
        from headrace.celery_monitor.metrics import monitor_text

        text += monitor_text(monitor.status())
    return text
