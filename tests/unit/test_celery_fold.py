"""The Celery fold: task and worker rows from events, whatever their order or repetition.

Each case is a set of events and the row they must give. Every case is folded
in every order (or a fixed sample of orders for the long ones) and with every
event delivered twice, and must give the same row each time.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest

from headrace.celery_monitor.fold import (
    TaskRow,
    WorkerRow,
    fold_tasks,
    fold_workers,
    heartbeat_expires,
    is_alive,
)
from headrace.celery_monitor.normalize import CeleryEvent


def ev(subject: str, ts: float, uuid: str = "t1", host: str = "w1@h", **fields: Any) -> CeleryEvent:
    group, _, subject = subject.rpartition("-") if "-" in subject else ("task", "", subject)
    return CeleryEvent(
        group=group or "task",
        subject=subject,
        hostname=host,
        timestamp=ts,
        local_received=ts + 1000,
        clock=int(ts * 10),
        uuid=uuid if (group or "task") == "task" else "",
        fields=fields,
    )


SPEC = {"name": "tiny.add", "args": "(1, 2)", "kwargs": "{}", "retries": 0}
SENT = ev("sent", 1.0, host="client@h", queue="celery", exchange="", routing_key="celery", **SPEC)
RECEIVED = ev("received", 2.0, **SPEC)
STARTED = ev("started", 3.0, pid=42)

# name -> (events, expected fields of the folded row)
TASK_CASES: dict[str, tuple[list[CeleryEvent], dict[str, Any]]] = {
    "success": (
        [SENT, RECEIVED, STARTED, ev("succeeded", 4.0, result="3", runtime=0.5)],
        {
            "state": "SUCCESS",
            "timestamp": 4.0,
            "name": "tiny.add",
            "args": "(1, 2)",
            "result": "3",
            "runtime": 0.5,
            "worker": "w1@h",
            "client": "client@h",
            "routing_key": "celery",
            "sent": 1.0,
            "received": 2.0,
            "started": 3.0,
            "succeeded": 4.0,
            "clock": 40,
        },
    ),
    "failure": (
        [SENT, RECEIVED, STARTED, ev("failed", 4.0, exception="ValueError('x')", traceback="TB")],
        {"state": "FAILURE", "exception": "ValueError('x')", "traceback": "TB", "failed": 4.0},
    ),
    "retried, then succeeded": (
        [
            SENT,
            RECEIVED,
            STARTED,
            ev("retried", 4.0, exception="Retry in 1s", traceback="TB1"),
            ev("sent", 4.1, host="w1@h", **{**SPEC, "retries": 1}),
            ev("received", 5.0, host="w2@h", **{**SPEC, "retries": 1}),
            ev("started", 6.0, host="w2@h"),
            ev("succeeded", 7.0, host="w2@h", result="3", runtime=0.1),
        ],
        {
            "state": "SUCCESS",
            "retries": 1,
            "retried": 4.0,
            "received": 5.0,
            "exception": "Retry in 1s",
            "worker": "w2@h",
            "client": "w1@h",
        },
    ),
    "retried, not yet received again": (
        [RECEIVED, STARTED, ev("retried", 4.0, exception="Retry", traceback="TB")],
        {"state": "RETRY", "timestamp": 4.0},
    ),
    "retried, received again": (
        [RECEIVED, STARTED, ev("retried", 4.0), ev("received", 5.0, **{**SPEC, "retries": 1})],
        {"state": "RECEIVED", "retries": 1},
    ),
    "revoked before its ETA": (
        [
            SENT,
            ev("received", 2.0, eta="2026-01-01T00:00:30+00:00", **SPEC),
            ev("revoked", 30.0, expired=False, terminated=False),
        ],
        {"state": "REVOKED", "eta": "2026-01-01T00:00:30+00:00", "started": None, "revoked": 30.0},
    ),
    "revoked and terminated while running": (
        [RECEIVED, STARTED, ev("revoked", 3.5, terminated=True, signum=15)],
        {"state": "REVOKED", "started": 3.0},
    ),
    "rejected": (
        [RECEIVED, ev("rejected", 2.5, requeue=False)],
        {"state": "REJECTED", "rejected": 2.5},
    ),
    "rejected, requeued and received again": (
        [RECEIVED, ev("rejected", 2.5, requeue=True), ev("received", 3.0, host="w2@h", **SPEC)],
        {"state": "RECEIVED", "worker": "w2@h"},
    ),
    "a client clock ahead of the worker's": (
        [ev("sent", 9.0, host="client@h", **{**SPEC, "args": "(sent,)"}), RECEIVED],
        {"state": "RECEIVED", "args": "(1, 2)", "client": "client@h"},
    ),
    "sent only": ([SENT], {"state": "PENDING", "name": "tiny.add", "worker": None}),
    "started without a received": (
        [STARTED],
        {"state": "STARTED", "name": None, "worker": "w1@h"},
    ),
    "a custom state, then success": (
        [RECEIVED, STARTED, ev("progress", 3.5), ev("succeeded", 4.0, result="1")],
        {"state": "SUCCESS"},
    ),
    "a custom state": ([RECEIVED, STARTED, ev("progress", 3.5)], {"state": "PROGRESS"}),
    "success beats a later failure (Celery's precedence)": (
        [RECEIVED, ev("succeeded", 4.0, result="1"), ev("failed", 5.0, exception="E")],
        {"state": "SUCCESS", "result": "1", "exception": "E"},
    ),
}


def _orders(events: list[CeleryEvent]) -> list[list[CeleryEvent]]:
    if len(events) <= 6:
        return [list(p) for p in itertools.permutations(events)]
    rng = random.Random(7)
    return [rng.sample(events, len(events)) for _ in range(300)]


def _fold_task(events: list[CeleryEvent], split: int | None = None) -> TaskRow:
    """Fold in one batch, or in two batches (the second seeing the first's stored row)."""
    if split is None:
        return fold_tasks({}, events)["t1"]
    first = fold_tasks({}, events[:split])
    return fold_tasks(first, events[split:]).get("t1") or first["t1"]


@pytest.mark.parametrize("case", TASK_CASES)
def test_task_row_is_the_same_in_any_order(case: str) -> None:
    events, expected = TASK_CASES[case]
    reference = _fold_task(events)

    for key, value in expected.items():
        assert getattr(reference, key) == value, key
    for order in _orders(events):
        assert _fold_task(order) == reference, [e.subject for e in order]
        assert _fold_task(order, split=len(order) // 2) == reference


@pytest.mark.parametrize("case", TASK_CASES)
def test_duplicates_change_nothing(case: str) -> None:
    events, _ = TASK_CASES[case]
    reference = _fold_task(events)

    assert _fold_task(events + events) == reference
    assert _fold_task([e for e in events for _ in range(2)]) == reference
    assert _fold_task(events + events, split=len(events)) == reference


def test_tasks_are_folded_separately() -> None:
    rows = fold_tasks({}, [ev("received", 1.0, uuid="a"), ev("succeeded", 2.0, uuid="b")])

    assert {u: r.state for u, r in rows.items()} == {"a": "RECEIVED", "b": "SUCCESS"}


def test_worker_events_are_not_task_rows() -> None:
    assert fold_tasks({}, [ev("worker-heartbeat", 1.0)]) == {}


def _fold_worker(events: list[CeleryEvent]) -> WorkerRow:
    return fold_workers({}, events)["w1@h"]


HEARTBEAT = {"freq": 2.0, "active": 1, "processed": 10, "loadavg": [0.1, 0.2, 0.3], "pid": 7}
WORKER_CASES: dict[str, tuple[list[CeleryEvent], dict[str, Any]]] = {
    "online and beating": (
        [
            ev("worker-online", 1.0, **{**HEARTBEAT, "processed": 0}),
            ev("worker-heartbeat", 3.0, **HEARTBEAT),
            ev("worker-heartbeat", 5.0, **{**HEARTBEAT, "processed": 12}),
        ],
        {"heartbeat": 1005.0, "processed": 12, "freq": 2.0, "pid": 7, "timestamp": 5.0},
    ),
    "said goodbye": (
        [
            ev("worker-online", 1.0, **HEARTBEAT),
            ev("worker-heartbeat", 3.0, **HEARTBEAT),
            ev("worker-offline", 5.0, **HEARTBEAT),
        ],
        {"heartbeat": None, "offline_at": 5.0},
    ),
    "came back after a goodbye": (
        [
            ev("worker-heartbeat", 3.0, **HEARTBEAT),
            ev("worker-offline", 5.0, **HEARTBEAT),
            ev("worker-online", 7.0, **HEARTBEAT),
        ],
        {"heartbeat": 1007.0, "offline_at": 5.0},
    ),
    "a task event after a goodbye is a sign of life": (
        [ev("worker-offline", 5.0, **HEARTBEAT), ev("started", 6.0)],
        {"heartbeat": 1006.0},
    ),
    "a task event before a goodbye is not": (
        [ev("started", 4.0), ev("worker-offline", 5.0, **HEARTBEAT)],
        {"heartbeat": None},
    ),
}


@pytest.mark.parametrize("case", WORKER_CASES)
def test_worker_row_is_the_same_in_any_order(case: str) -> None:
    events, expected = WORKER_CASES[case]
    reference = _fold_worker(events)

    for key, value in expected.items():
        assert getattr(reference, key) == value, key
    for order in itertools.permutations(events + events[:1]):
        assert _fold_worker(list(order)) == reference


def test_task_sent_makes_no_worker_row() -> None:
    assert fold_workers({}, [SENT]) == {}


def test_a_worker_known_from_task_events_gets_celerys_default_frequency() -> None:
    row = _fold_worker([STARTED])

    assert (row.freq, row.heartbeat) == (60.0, 1003.0)


def test_fold_continues_from_a_stored_row() -> None:
    stored = _fold_worker([ev("worker-heartbeat", 3.0, **HEARTBEAT)])

    row = fold_workers({"w1@h": stored}, [ev("worker-heartbeat", 2.0, processed=1)])["w1@h"]

    assert row.processed == 10  # the older heartbeat's counters lose
    assert row.heartbeat == 1003.0


# Celery's rule: online until heartbeat + freq * 200 %.
@pytest.mark.parametrize(
    ("heartbeat", "freq", "now", "alive"),
    [
        (100.0, 2.0, 100.0, True),
        (100.0, 2.0, 103.99, True),
        (100.0, 2.0, 104.0, False),
        (100.0, 60.0, 219.0, True),
        (100.0, 60.0, 220.0, False),
        (None, 2.0, 50.0, False),
    ],
)
def test_worker_expiry_rule(heartbeat: float | None, freq: float, now: float, alive: bool) -> None:
    row = dataclasses.replace(WorkerRow("w"), heartbeat=heartbeat, freq=freq)

    assert is_alive(row, now) is alive


def test_heartbeat_expires_matches_celery() -> None:
    from celery.events.state import heartbeat_expires as celerys

    assert heartbeat_expires(1000.0, 2.0) == celerys(1000.0, 2.0)
    assert heartbeat_expires(1000.0, 60.0) == celerys(1000.0)
