"""/logs routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Filter, LogCreate
from headrace.storage import logs

router = APIRouter(prefix="/logs")


@router.post("/")
async def create_logs(body: list[LogCreate], request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await logs.insert_logs(conn, [log.wire() for log in body], deps.now())
    return JSON(None, status_code=201)


@router.post("/filter")
async def filter_logs(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await logs.filter_logs(conn, body.wire(), body.limit, body.offset)
    return JSON(found)
