"""/flows routes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Filter, FlowCreate
from headrace.storage import flows

router = APIRouter(prefix="/flows")


@router.post("/")
async def create_flow(body: FlowCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        flow, created = await flows.ensure_flow(conn, body.name, body.tags, body.labels)
    return JSON(flow, status_code=201 if created else 200)


@router.post("/filter")
async def filter_flows(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await flows.filter_flows(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.post("/count")
async def count_flows(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await flows.count_flows(conn, body.wire()))


@router.get("/name/{name}")
async def read_flow_by_name(name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await flows.read_flow_by_name(conn, name))


@router.get("/{flow_id}")
async def read_flow(flow_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await flows.read_flow(conn, deps.uuid_path(flow_id, "flow id")))


@router.delete("/{flow_id}", status_code=204)
async def delete_flow(flow_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await flows.delete_flow(conn, deps.uuid_path(flow_id, "flow id"))
    return Response(status_code=204)
