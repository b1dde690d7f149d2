"""The dashboard: a small ASGI app mounted at ``/ui`` by the API.

Pages are static HTML with a script that fetches JSON from ``/ui/api/...`` and
fetches again when the live feed (``/ui/api/celery/stream``) says its data
changed. Every value is put into the page as text, never as markup.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from headrace.api import flower
from headrace.api.responses import JSON
from headrace.celery_monitor import search
from headrace.errors import NotFound
from headrace.storage import celery_tasks, celery_workers
from headrace.storage.celery_tasks import TaskQuery
from headrace.ui import views
from headrace.ui.live import Feed

if TYPE_CHECKING:
    from headrace.server import Server

STATIC = Path(__file__).parent / "static"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

_NOT_FOUND = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Task not found · headrace</title>
<link rel="stylesheet" href="/ui/static/style.css"></head>
<body><main><h1>Task not found</h1>
<p>No task with id <code>{uuid}</code> is stored: it was never seen, or retention removed it.</p>
<p><a href="/ui/celery/tasks">All tasks</a></p></main></body></html>
"""


def page_query(params: Mapping[str, str]) -> TaskQuery:
    """The tasks page's query: Flower's parameters, a bounded page, one row more.

    The extra row tells whether a next page exists without counting the table.

    Raises:
        HTTPException: 400 naming the bad parameter.
        SearchSyntaxError: the ``search`` query cannot be parsed.
    """
    limit = flower.int_arg(params, "limit", DEFAULT_LIMIT) or 0
    if not 1 <= limit <= MAX_LIMIT:
        raise HTTPException(400, f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    return flower.task_query({**params, "limit": str(limit + 1)})


def _bad_request(detail: str) -> Response:
    return JSON({"detail": detail}, status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and methods under ``/ui`` answer JSON, as the API does."""
    assert isinstance(exc, HTTPException)
    return JSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class Dashboard:
    """The dashboard's routes over one server's database and its live feed."""

    def __init__(self, server: Server, feed: Feed) -> None:
        self.server = server
        self.feed = feed

    async def index(self, request: Request) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/celery/tasks")

    async def page(self, request: Request) -> Response:
        name = "workers" if request.url.path.endswith("/workers") else "tasks"
        return FileResponse(STATIC / f"{name}.html")

    async def task_page(self, request: Request) -> Response:
        uuid = request.path_params["uuid"]
        try:
            async with self.server.db.read() as conn:
                await celery_tasks.get_task(conn, uuid)
        except NotFound:
            return HTMLResponse(_NOT_FOUND.format(uuid=html.escape(uuid)), status_code=404)
        return FileResponse(STATIC / "task.html")

    async def workers(self, request: Request) -> Response:
        async with self.server.db.read() as conn:
            stored = await celery_workers.list_workers(conn)
            failed = await celery_tasks.failures_by_worker(conn)
        now = time.time()
        rows = [views.worker_view(w, failed.get(w.row.hostname, 0), now) for w in stored]
        return JSON({"now": now, "workers": rows})

    async def tasks(self, request: Request) -> Response:
        try:
            query = page_query(request.query_params)
        except HTTPException as exc:
            return _bad_request(exc.detail)
        except search.SearchSyntaxError as exc:
            return _bad_request(str(exc))
        async with self.server.db.read() as conn:
            rows = await celery_tasks.list_tasks(conn, query)
        limit = (query.limit or 1) - 1
        return JSON(
            {
                "tasks": [views.task_summary(row) for row in rows[:limit]],
                "offset": query.offset,
                "limit": limit,
                "more": len(rows) > limit,
            }
        )

    async def task(self, request: Request) -> Response:
        uuid = request.path_params["uuid"]
        try:
            async with self.server.db.read() as conn:
                row = await celery_tasks.get_task(conn, uuid)
                children = await celery_tasks.children_of(conn, [uuid])
        except NotFound as exc:
            return JSON({"detail": str(exc)}, status_code=404)
        return JSON(flower.task_dict(row, children.get(uuid, [])))

    async def stream(self, request: Request) -> Response:
        if self.feed.closed or self.feed.full:
            detail = "the live feed is not taking streams now (stopping, or too many open)"
            return JSON({"detail": detail}, status_code=503, headers={"Retry-After": "10"})
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            self.feed.stream(), media_type="text/event-stream", headers=headers
        )


def create_ui(server: Server) -> Starlette:
    """The dashboard app; its live feed listens on the server's bus (topic ``celery``).

    The feed is ``app.state.feed``: closing it ends every open stream.
    """
    feed = Feed()
    server.bus.subscribe("celery", feed.notice)
    ui = Dashboard(server, feed)
    app = Starlette(
        routes=[
            Route("/", ui.index),
            Route("/celery/workers", ui.page),
            Route("/celery/tasks", ui.page),
            Route("/celery/tasks/{uuid:path}", ui.task_page),
            Route("/api/celery/workers", ui.workers),
            Route("/api/celery/tasks", ui.tasks),
            Route("/api/celery/tasks/{uuid:path}", ui.task),
            Route("/api/celery/stream", ui.stream),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.feed = feed
    return app
