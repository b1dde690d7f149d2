"""What the dashboard's pages fetch: workers and tasks as plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from headrace.celery_monitor.fold import TaskRow, heartbeat_expires, is_alive
from headrace.storage.celery_workers import StoredWorker


def _pool_size(info: dict[str, Any]) -> int | None:
    """``max-concurrency`` from the worker's ``inspect stats`` answer, if it gave one."""
    stats = info.get("stats")
    pool = stats.get("pool") if isinstance(stats, dict) else None
    size = pool.get("max-concurrency") if isinstance(pool, dict) else None
    return size if isinstance(size, int) else None


def _queues(info: dict[str, Any]) -> list[str] | None:
    """Names from the worker's ``inspect active_queues`` answer (None: never asked)."""
    queues = info.get("active_queues")
    if not isinstance(queues, list):
        return None
    return [q["name"] for q in queues if isinstance(q, dict) and isinstance(q.get("name"), str)]


def worker_view(stored: StoredWorker, failed: int, now: float) -> dict[str, Any]:
    """One row of the workers page.

    Pool size and queues are known only once the worker answered ``inspect``
    (the page's "ask the workers" button); they are None until then.
    """
    row = stored.row
    info = stored.info or {}
    expires = None if row.heartbeat is None else heartbeat_expires(row.heartbeat, row.freq)
    return {
        "hostname": row.hostname,
        "online": is_alive(row, now),
        "expires": expires,
        "active": row.active,
        "processed": row.processed,
        "failed": failed,
        "loadavg": row.loadavg,
        "pool_size": _pool_size(info),
        "queues": _queues(info),
        "heartbeat": row.heartbeat,
        "freq": row.freq,
        "pid": row.pid,
        "sw_ident": row.sw_ident,
        "sw_ver": row.sw_ver,
        "sw_sys": row.sw_sys,
    }


def task_summary(row: TaskRow) -> dict[str, Any]:
    """One row of the tasks page (the detail page shows Flower's whole task)."""
    return {
        "uuid": row.uuid,
        "name": row.name,
        "state": row.state,
        "args": row.args,
        "kwargs": row.kwargs,
        "result": row.result,
        "exception": row.exception,
        "received": row.received,
        "started": row.started,
        "timestamp": row.timestamp,
        "runtime": row.runtime,
        "worker": row.worker,
    }
