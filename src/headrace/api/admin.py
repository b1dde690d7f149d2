"""Health, readiness, version and the probes every client instance makes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace import PREFECT_COMPAT_VERSION, __version__
from headrace.api import deps
from headrace.api.responses import JSON

router = APIRouter()


@router.get("/health")
async def health() -> Response:
    return JSON(True)


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


@router.get("/admin/storage")
async def admin_storage() -> Response:
    return JSON({"default_result_storage_block_id": None})
