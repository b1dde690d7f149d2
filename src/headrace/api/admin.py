"""Health, readiness, version, the probes every client instance makes, and /admin settings."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace import PREFECT_COMPAT_VERSION, __version__
from headrace import health as health_report
from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Body
from headrace.storage import configuration

router = APIRouter()


@router.get("/health")
async def health() -> Response:
    return JSON(True)  # exactly ``true``: the Prefect client compares it


@router.get("/health/details")
async def health_details(request: Request) -> Response:
    """The database, each service and the Celery monitor's connection and backoff."""
    return JSON(await health_report.details(deps.server(request)))


@router.get("/ready")
async def ready(request: Request) -> Response:
    if await deps.server(request).db.ping():
        return JSON({"message": "Server is ready."})
    return JSON({"detail": "database unreachable"}, status_code=503, headers={"Retry-After": "5"})


@router.get("/version")
async def version() -> Response:
    return JSON(PREFECT_COMPAT_VERSION)


@router.get("/admin/version")
async def admin_version() -> Response:
    return JSON(PREFECT_COMPAT_VERSION)


@router.get("/hello")
async def hello() -> Response:
    return JSON("👋")


@router.get("/csrf-token")
async def csrf_token() -> Response:
    # CSRF protection is off, as on the reference server by default; the client
    # recognises this exact text and stops asking.
    return JSON({"detail": "CSRF protection is disabled."}, status_code=422)


@router.get("/admin/settings")
async def admin_settings() -> Response:
    return JSON({"server": {"analytics_enabled": False}, "headrace": {"version": __version__}})


class ResultStorageUpdate(Body):
    default_result_storage_block_id: UUID


@router.get("/admin/storage")
async def read_result_storage(request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await configuration.read_default_result_storage(conn))


@router.put("/admin/storage")
async def update_result_storage(body: ResultStorageUpdate, request: Request) -> Response:
    block_id = str(body.default_result_storage_block_id)
    async with deps.server(request).db.write() as conn:
        return JSON(await configuration.set_default_result_storage(conn, block_id, deps.now()))


@router.delete("/admin/storage", status_code=204)
async def clear_result_storage(request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await configuration.clear_default_result_storage(conn)
    return Response(status_code=204)
