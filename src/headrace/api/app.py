"""The ASGI application: routers under ``/api``, error mapping, body limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headrace import __version__, metrics
from headrace.api import (
    admin,
    artifacts,
    block_documents,
    block_types,
    concurrency,
    concurrency_v1,
    deployments,
    events,
    flow_run_inputs,
    flow_runs,
    flower,
    flower_control,
    flows,
    logs,
    sockets,
    task_runs,
    task_subscriptions,
    variables,
    work_pools,
    work_queues,
)
from headrace.api.responses import JSON
from headrace.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Unavailable
from headrace.server import Server
from headrace.ui.app import create_ui


def create_app(server: Server) -> FastAPI:
    """Build the app around a ``Server``; its lifespan starts and stops the server."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="headrace",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        default_response_class=JSON,
    )
    app.state.server = server
    api = APIRouter(prefix="/api")
    modules = (admin, flows, flow_runs, task_runs, logs, events, sockets, concurrency)
    for module in (*modules, deployments, work_pools, work_queues, flow_run_inputs):
        api.include_router(module.router)
    # issue #6 routers (concurrency limits, variables/artifacts/blocks, task queue) go here
    for module in (variables, artifacts, block_types, block_documents):
        api.include_router(module.router)
    api.include_router(concurrency_v1.router)
    api.include_router(task_subscriptions.router)

    app.include_router(api)
    app.include_router(flower.router)  # Flower's read API, beside /api
    app.include_router(flower_control.router)  # its control API (needs auth)
    app.add_api_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    # The dashboard; uvicorn waits for open responses on shutdown, so the CLI
    # ends the dashboard's live streams (``close_streams``) when told to stop.
    ui = create_ui(server)
    app.mount("/ui", ui)
    app.state.close_streams = ui.state.feed.close
    app.add_api_route("/", _to_dashboard, methods=["GET"], include_in_schema=False)
    _install_error_handlers(app)
    app.add_middleware(BodyGuard, max_bytes=server.settings.max_body_bytes)
    return app


async def _to_dashboard() -> Response:
    return RedirectResponse("/ui/")


async def _metrics(request: Request) -> Response:
    """headrace's Prometheus metrics (text exposition format)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(metrics.render(request.app.state.server), media_type=CONTENT_TYPE_LATEST)


def _install_error_handlers(app: FastAPI) -> None:
    def answer(status: int) -> Any:
        async def handler(_request: Request, exc: Exception) -> Response:
            return JSON({"detail": str(exc)}, status_code=status)

        return handler

    app.add_exception_handler(NotFound, answer(404))
    app.add_exception_handler(AlreadyExists, answer(409))
    app.add_exception_handler(Conflict, answer(409))
    app.add_exception_handler(InvalidInput, answer(422))

    async def unavailable(_request: Request, exc: Exception) -> Response:
        retry = getattr(exc, "retry_after", 1.0)
        return JSON({"detail": str(exc)}, status_code=503, headers={"Retry-After": f"{retry:g}"})

    app.add_exception_handler(Unavailable, unavailable)

    async def invalid_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSON({"detail": errors, "exception_message": "Invalid request received."}, 422)

    app.add_exception_handler(RequestValidationError, invalid_request)


class BodyGuard:
    """Read each request body in full (bounded) before the app sees it.

    Bodies over ``max_bytes`` get 413, declared or streamed. Bodies holding an
    escaped NUL character get 422: Postgres cannot store NUL in text or jsonb, and
    refusing it at the edge keeps both backends alike.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"\\u0000" in body:
            detail = "NUL characters (\\u0000) are not supported in any field"
            await self._refuse(scope, receive, send, 422, detail)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body exceeds the {self.max_bytes} byte limit"

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        await JSON({"detail": detail}, status_code=status)(scope, receive, send)
