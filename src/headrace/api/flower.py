"""Flower 2.2's read API and metrics under ``/flower`` (as with ``--url_prefix=flower``).

Same paths, query parameters and JSON shapes, answered from the database the
Celery monitor fills; ``/flower/metrics`` has Flower's metric names. Bad parameters get 400 with Flower's message (in
``detail``; a bad ``search`` also in ``error``, Flower's key for it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.celery_monitor import broker, search
from headrace.celery_monitor.fold import TaskRow, is_alive
from headrace.celery_monitor.metrics import render
from headrace.storage import celery_tasks, celery_workers
from headrace.storage.celery_tasks import SORT_COLUMNS, TaskQuery

router = APIRouter(prefix="/flower")

_TRUE = ("y", "yes", "t", "true", "on", "1")
_FALSE = ("n", "no", "f", "false", "off", "0")
RECEIVED_FORMAT = "%Y-%m-%d %H:%M"


def _bad(message: str) -> HTTPException:
    return HTTPException(400, message)


def int_arg(params: Mapping[str, str], name: str, default: int | None) -> int | None:
    """An integer query parameter, as Flower reads it (400 names the bad value)."""
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise _bad(f"Invalid argument '{raw.strip()}' of type 'int'") from None


def bool_arg(params: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter (``strtobool``'s words; absent is false)."""
    raw = params.get(name)
    if raw is None:
        return False
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise _bad(f"Invalid argument '{raw.strip()}' of type 'bool'")


def _text_arg(params: Mapping[str, str], name: str) -> str | None:
    raw = params.get(name)
    value = None if raw is None else raw.strip()
    return None if not value or value == "All" else value


def _received(value: str | None) -> float | None:
    """``YYYY-MM-DD HH:MM`` in the server's local time, as Flower reads it."""
    if not value:
        return None
    try:
        return time.mktime(datetime.strptime(value, RECEIVED_FORMAT).timetuple())
    except ValueError:
        raise _bad(
            "Invalid received_start or received_end, expected format 'YYYY-MM-DD HH:MM'"
        ) from None


def task_query(params: Mapping[str, str]) -> TaskQuery:
    """The query parameters of ``/api/tasks``, checked.

    Raises:
        HTTPException: 400 with Flower's message for the first bad parameter.
        SearchSyntaxError: the ``search`` query cannot be parsed.
    """
    limit = int_arg(params, "limit", None)
    offset = int_arg(params, "offset", 0) or 0
    sort_by = _text_arg(params, "sort_by")
    if sort_by and sort_by.lstrip("-") not in SORT_COLUMNS:
        raise _bad(
            f"Invalid sort_by '{sort_by}', expected one of {', '.join(sorted(SORT_COLUMNS))}"
        )
    tree = search.parse(params.get("search") or "")
    return TaskQuery(
        limit=limit,
        offset=max(offset, 0),
        sort_by=sort_by.lstrip("-") if sort_by else None,
        descending=bool(sort_by and sort_by.startswith("-")),
        state=_text_arg(params, "state"),
        name=_text_arg(params, "taskname"),
        worker=_text_arg(params, "workername"),
        received_start=_received(_text_arg(params, "received_start")),
        received_end=_received(_text_arg(params, "received_end")),
        search=tree,
    )


def task_dict(row: TaskRow, children: list[str]) -> dict[str, Any]:
    """A task as Flower's ``Task.as_dict()`` shows it (``worker`` is the hostname)."""
    return {
        "uuid": row.uuid,
        "name": row.name,
        "state": row.state,
        "received": row.received,
        "sent": row.sent,
        "started": row.started,
        "rejected": row.rejected,
        "succeeded": row.succeeded,
        "failed": row.failed,
        "retried": row.retried,
        "revoked": row.revoked,
        "args": row.args,
        "kwargs": row.kwargs,
        "eta": row.eta,
        "expires": row.expires,
        "retries": row.retries,
        "worker": row.worker,
        "result": row.result,
        "exception": row.exception,
        "timestamp": row.timestamp,
        "runtime": row.runtime,
        "traceback": row.traceback,
        "exchange": row.exchange,
        "routing_key": row.routing_key,
        "clock": row.clock,
        "client": row.client,
        "root": row.root_id,
        "root_id": row.root_id,
        "parent": row.parent_id,
        "parent_id": row.parent_id,
        "children": children,
    }


@router.get("/api/tasks")
async def list_tasks(request: Request) -> Response:
    try:
        query = task_query(request.query_params)
    except search.SearchSyntaxError as exc:
        return JSON({"error": str(exc), "detail": str(exc)}, status_code=400)
    async with deps.server(request).db.read() as conn:
        rows = await celery_tasks.list_tasks(conn, query)
        kids = await celery_tasks.children_of(conn, [row.uuid for row in rows])
    page = {}
    for row in rows:
        task = task_dict(row, kids.get(row.uuid, []))
        if task["worker"] is None:
            del task["worker"]  # Flower's list leaves it out then
        page[row.uuid] = task
    return JSON(page)


@router.get("/api/task/info/{task_id}")
async def task_info(task_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        row = await celery_tasks.get_task(conn, task_id)
        kids = await celery_tasks.children_of(conn, [row.uuid])
    return JSON(task_dict(row, kids.get(row.uuid, [])))


@router.get("/api/task/types")
async def task_types(request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        names = await celery_tasks.task_types(conn)
    return JSON({"task-types": names})


def _broker_url(request: Request) -> str:
    url = deps.server(request).settings.celery_broker_url
    if not url:
        raise HTTPException(503, "no Celery broker is configured (HEADRACE_CELERY_BROKER_URL)")
    return url


def worker_dict(stored: celery_workers.StoredWorker, now: float) -> dict[str, Any]:
    """Flower's entry for a worker (its ``inspect`` answers) plus what its events say."""
    row = stored.row
    entry: dict[str, Any] = dict(stored.info or {})
    entry.setdefault("timestamp", row.heartbeat)
    entry["status"] = is_alive(row, now)
    entry["heartbeat"] = {
        "last_heartbeat": row.heartbeat,
        "freq": row.freq,
        "pid": row.pid,
        "active": row.active,
        "processed": row.processed,
        "loadavg": row.loadavg,
        "sw_ident": row.sw_ident,
        "sw_ver": row.sw_ver,
        "sw_sys": row.sw_sys,
        "clock": row.clock,
        "timestamp": row.timestamp,
    }
    return entry


@router.get("/api/workers")
async def list_workers(request: Request) -> Response:
    params = request.query_params
    refresh = bool_arg(params, "refresh")
    status = bool_arg(params, "status")
    workername = _text_arg(params, "workername")
    db = deps.server(request).db
    if refresh:
        url = _broker_url(request)
        try:
            answers = await asyncio.to_thread(broker.inspect_workers, url, workername)
        except broker.BrokerError as exc:
            raise HTTPException(503, f"Failed to update workers: {exc}") from None
        async with db.write() as conn:
            await celery_workers.save_info(conn, answers, time.time())
    async with db.read() as conn:
        workers = await celery_workers.list_workers(conn, workername)
    now = time.time()
    if status:
        return JSON({w.row.hostname: is_alive(w.row, now) for w in workers})
    if workername and not workers:
        raise HTTPException(404, f"Unknown worker '{workername}'")
    return JSON({w.row.hostname: worker_dict(w, now) for w in workers})


@router.get("/api/queues/length")
async def queues_length(request: Request) -> Response:
    url = _broker_url(request)
    async with deps.server(request).db.read() as conn:
        workers = await celery_workers.list_workers(conn)
    names = sorted(
        {
            queue["name"]
            for w in workers
            for queue in (w.info or {}).get("active_queues") or []
            if isinstance(queue, dict) and queue.get("name")
        }
    ) or [broker.DEFAULT_QUEUE]
    try:
        lengths = await asyncio.to_thread(broker.queue_lengths, url, names)
    except broker.BrokerError as exc:
        raise HTTPException(503, f"Cannot read queue lengths: {exc}") from None
    return JSON({"active_queues": lengths})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Flower's Prometheus metrics, and the monitor's own when it runs in this process."""
    server = deps.server(request)
    async with server.db.read() as conn:
        workers = await celery_workers.list_workers(conn)
        waiting = await celery_tasks.prefetched(conn)
    now = time.time()
    monitor = server.celery_monitor
    body = render(
        monitor.metrics if monitor is not None else None,
        monitor.status() if monitor is not None else None,
        online={w.row.hostname: is_alive(w.row, now) for w in workers},
        executing={w.row.hostname: w.row.active for w in workers if w.row.active is not None},
        prefetched=waiting,
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
