"""Fold Celery events into one row per task and one row per worker (pure functions).

Correct under duplicate and out-of-order delivery: the result depends on the set
of events seen, not on the order they arrived in. Celery's own ``State`` applies
events in arrival order and guards against disorder with a state precedence;
here every choice is a maximum over the events, so replaying, reordering or
repeating them gives the same row:

* the task's state is that of its dominant event. A final state (SUCCESS, then
  FAILURE, then REVOKED, Celery's precedence among them) dominates every other;
  otherwise the newest event by timestamp wins, with the lifecycle order
  breaking ties, and ``task-sent`` (stamped by the client's clock) never beats
  an event from a worker. A retried task thus shows RETRY until its next
  ``task-received``, and SUCCESS once it succeeds, however the events arrive;
* ``name``, ``args``, ``kwargs``, ``retries``, ``eta``, ``expires``, ``root_id``
  and ``parent_id`` come from the newest ``task-received`` (or the newest
  ``task-sent`` while no received was seen: a client's clock may run ahead of
  the workers'); an older event only fills a field still unknown. The routing
  fields and ``client`` from the newest
  ``task-sent``, ``result``/``runtime`` from the newest ``task-succeeded``,
  ``exception``/``traceback`` from the newest ``task-failed`` or
  ``task-retried``, ``worker`` from the newest event a worker sent;
* each lifecycle timestamp (``received``, ``started``, ...) is the newest of
  its kind, and ``timestamp`` is the dominant event's.

Workers: one row per hostname, fields from the newest ``worker-*`` event.
``heartbeat`` is the monitor's clock at the newest sign of life (a worker event
or a task event from that worker) after the last ``worker-offline`` (``alive_at``
is that sign's own timestamp, to compare with the goodbye's); the worker
is online until ``heartbeat + freq * 2`` (Celery's ``heartbeat_expires`` with its
200 % window).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from headrace.celery_monitor.normalize import CeleryEvent

STATE_OF_SUBJECT = {
    "sent": "PENDING",
    "received": "RECEIVED",
    "started": "STARTED",
    "succeeded": "SUCCESS",
    "failed": "FAILURE",
    "retried": "RETRY",
    "revoked": "REVOKED",
    "rejected": "REJECTED",
}
# Final states and their precedence (Celery: SUCCESS > FAILURE > REVOKED).
FINAL_STATES = {"SUCCESS": 3, "FAILURE": 2, "REVOKED": 1}
# Tie-break between non-final states stamped with the same time.
_LIFECYCLE = {"PENDING": 0, "RECEIVED": 1, "STARTED": 2, "RETRY": 3, "REJECTED": 3}
_CUSTOM_RANK = 2
SPEC_FIELDS = ("name", "args", "kwargs", "retries", "eta", "expires", "root_id", "parent_id")
# Celery's default heartbeat interval, assumed for a worker known only from task events.
DEFAULT_FREQ = 60.0
HEARTBEAT_EXPIRE_WINDOW = 200  # percent, as in celery.events.state
_NEVER = float("-inf")
_INT32 = 2**31 - 1


@dataclass
class TaskRow:
    """Everything stored about one task (the ``celery_tasks`` row)."""

    uuid: str
    state: str = "PENDING"
    timestamp: float = _NEVER
    name: str | None = None
    worker: str | None = None
    client: str | None = None
    args: str | None = None
    kwargs: str | None = None
    result: str | None = None
    exception: str | None = None
    traceback: str | None = None
    eta: str | None = None
    expires: str | None = None
    retries: int | None = None
    runtime: float | None = None
    exchange: str | None = None
    routing_key: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    clock: int = 0
    sent: float | None = None
    received: float | None = None
    started: float | None = None
    succeeded: float | None = None
    failed: float | None = None
    retried: float | None = None
    revoked: float | None = None
    rejected: float | None = None


@dataclass
class WorkerRow:
    """Everything stored about one worker (the ``celery_workers`` row)."""

    hostname: str
    freq: float = DEFAULT_FREQ
    pid: int | None = None
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None
    active: int | None = None
    processed: int | None = None
    loadavg: list[Any] | None = None
    clock: int = 0
    timestamp: float | None = None
    heartbeat: float | None = None
    alive_at: float | None = None
    offline_at: float | None = None


def state_of(event: CeleryEvent) -> str:
    """The task state an event announces (custom events: their subject, upper-cased)."""
    return STATE_OF_SUBJECT.get(event.subject) or event.subject.upper()


def dominance(state: str, timestamp: float) -> tuple[Any, ...]:
    """The order in which events decide a task's state (the greatest wins)."""
    if state in FINAL_STATES:
        return (2, FINAL_STATES[state], timestamp)
    if state == "PENDING":
        return (0, timestamp)
    return (1, timestamp, _LIFECYCLE.get(state, _CUSTOM_RANK), state)


def _newest(*stamps: float | None) -> float:
    newest = _NEVER
    for stamp in stamps:  # a plain loop: this runs several times per event
        if stamp is not None and stamp > newest:
            newest = stamp
    return newest


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) or value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    """An integer that fits a 32-bit column, or None (never an error at commit)."""
    if isinstance(value, bool):
        return None
    if not isinstance(value, int):
        try:
            value = int(value)
        except (TypeError, ValueError, OverflowError):
            return None
    return value if -_INT32 <= value <= _INT32 else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _spec_source(row: TaskRow) -> tuple[bool, float]:
    """Which event the row's spec fields came from: any received beats every sent."""
    if row.received is not None:
        return (True, row.received)
    return (False, _newest(row.sent))


def apply_task_event(row: TaskRow | None, event: CeleryEvent) -> TaskRow:
    """``row`` with ``event`` folded in (a new row when ``row`` is None)."""
    fresh = TaskRow(event.uuid) if row is None else copy.copy(row)
    _fold_task_event(fresh, event)
    return fresh


def _fold_task_event(row: TaskRow, event: CeleryEvent) -> None:
    """Fold ``event`` into ``row`` in place (a row of this batch's own)."""
    fields = event.fields
    ts = event.timestamp
    state = state_of(event)
    # Every decision compares with the row as it was before this event.
    if row.timestamp == _NEVER or dominance(state, ts) >= dominance(row.state, row.timestamp):
        row.state, row.timestamp = state, ts
    if event.subject in ("sent", "received"):
        newest = (event.subject == "received", ts) >= _spec_source(row)
        for key in SPEC_FIELDS:
            if key in fields and (newest or getattr(row, key) is None):
                value = fields[key]
                setattr(row, key, _int_or_none(value) if key == "retries" else value)
    if event.subject == "sent":
        newest = ts >= _newest(row.sent)
        if newest or row.client is None:
            row.client = event.hostname or row.client
        for key in ("exchange", "routing_key"):
            if key in fields and (newest or getattr(row, key) is None):
                setattr(row, key, _text_or_none(fields[key]))
    elif event.hostname:
        newest_from_worker = _newest(
            row.received, row.started, row.succeeded, row.failed, row.retried, row.revoked
        )
        if row.worker is None or ts >= _newest(newest_from_worker, row.rejected):
            row.worker = event.hostname
    if event.subject == "succeeded" and ts >= _newest(row.succeeded):
        row.result = fields.get("result", row.result)
        row.runtime = _float_or_none(fields.get("runtime"))
    if event.subject in ("failed", "retried") and ts >= _newest(row.failed, row.retried):
        row.exception = fields.get("exception", row.exception)
        row.traceback = fields.get("traceback", row.traceback)
    if event.subject in STATE_OF_SUBJECT:
        setattr(row, event.subject, max(ts, _newest(getattr(row, event.subject))))
    row.clock = max(row.clock, event.clock)


def _sign_of_life(row: WorkerRow, event: CeleryEvent) -> None:
    if row.offline_at is None or event.timestamp > row.offline_at:
        row.heartbeat = max(event.local_received, _newest(row.heartbeat))
        row.alive_at = max(event.timestamp, _newest(row.alive_at))


def apply_worker_event(row: WorkerRow | None, event: CeleryEvent) -> WorkerRow:
    """``row`` with ``event`` (a worker event, or a task event its worker sent) folded in."""
    fresh = WorkerRow(event.hostname) if row is None else copy.copy(row)
    _fold_worker_event(fresh, event)
    return fresh


def _fold_worker_event(row: WorkerRow, event: CeleryEvent) -> None:
    """Fold ``event`` into ``row`` in place (a row of this batch's own)."""
    ts = event.timestamp
    if event.group == "task":
        _sign_of_life(row, event)  # Celery counts task events as heartbeats too
        return
    newest = row.timestamp is None or ts >= row.timestamp
    if event.subject == "offline":
        row.offline_at = max(ts, _newest(row.offline_at))
        if row.alive_at is None or row.alive_at <= ts:
            row.heartbeat = row.alive_at = None
    else:
        _sign_of_life(row, event)
    if newest:
        fields = event.fields
        row.timestamp = ts
        freq = _float_or_none(fields.get("freq"))
        row.freq = freq if freq and freq > 0 else row.freq
        row.pid = _int_or_none(fields.get("pid", row.pid))
        for key in ("sw_ident", "sw_ver", "sw_sys"):
            setattr(row, key, _text_or_none(fields.get(key, getattr(row, key))))
        for key in ("active", "processed"):
            setattr(row, key, _int_or_none(fields.get(key, getattr(row, key))))
        loadavg = fields.get("loadavg", row.loadavg)
        row.loadavg = loadavg if isinstance(loadavg, list) else None
    row.clock = max(row.clock, event.clock)


def heartbeat_expires(heartbeat: float, freq: float) -> float:
    """When a worker last heard from at ``heartbeat`` counts as gone (Celery's rule)."""
    return heartbeat + freq * (HEARTBEAT_EXPIRE_WINDOW / 100)


def is_alive(row: WorkerRow, now: float) -> bool:
    """Online: heard from since its last goodbye, and its heartbeat has not expired."""
    return row.heartbeat is not None and now < heartbeat_expires(row.heartbeat, row.freq)


def fold_tasks(existing: dict[str, TaskRow], events: Iterable[CeleryEvent]) -> dict[str, TaskRow]:
    """The rows of the tasks ``events`` touch, with the events folded in.

    Args:
        existing: stored rows by task id (missing ids start empty).
        events: any mix of events; non-task events are ignored.
    """
    rows: dict[str, TaskRow] = {}
    for event in events:
        if event.group != "task":
            continue
        row = rows.get(event.uuid)
        if row is None:  # copied once per batch, then folded into in place
            row = rows[event.uuid] = apply_task_event(existing.get(event.uuid), event)
        else:
            _fold_task_event(row, event)
    return rows


def fold_workers(
    existing: dict[str, WorkerRow], events: Iterable[CeleryEvent]
) -> dict[str, WorkerRow]:
    """The rows of the workers ``events`` came from (``task-sent`` senders are clients)."""
    rows: dict[str, WorkerRow] = {}
    for event in events:
        if not event.hostname or (event.group == "task" and event.subject == "sent"):
            continue
        row = rows.get(event.hostname)
        if row is None:  # copied once per batch, then folded into in place
            rows[event.hostname] = apply_worker_event(existing.get(event.hostname), event)
        else:
            _fold_worker_event(row, event)
    return rows
