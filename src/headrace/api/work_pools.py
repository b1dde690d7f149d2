"""/work_pools routes, with their queues and workers (/work_queues by id: work_queues.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response

from headrace.api import deps
from headrace.api.deployment_schemas import (
    PoolConcurrencyStatusQuery,
    WorkerHeartbeat,
    WorkerRunsPoll,
    WorkPoolCreate,
    WorkPoolUpdate,
    WorkQueueCreate,
)
from headrace.api.responses import JSON
from headrace.api.schemas import Filter
from headrace.storage import queue_status, work_pools, work_queues

router = APIRouter()


@router.post("/work_pools/", status_code=201)
async def create_work_pool(body: WorkPoolCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        pool = await work_pools.create_pool(conn, body.wire(), deps.now())
    return JSON(pool, status_code=201)


@router.post("/work_pools/filter")
async def filter_work_pools(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await work_pools.filter_pools(
            conn, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.get("/work_pools/{name}")
async def read_work_pool(name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await work_pools.read_pool(conn, name, deps.now()))


@router.patch("/work_pools/{name}", status_code=204)
async def update_work_pool(name: str, body: WorkPoolUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await work_pools.update_pool(conn, name, body.wire(exclude_unset=True), deps.now())
    return Response(status_code=204)


@router.delete("/work_pools/{name}", status_code=204)
async def delete_work_pool(name: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await work_pools.delete_pool(conn, name)
    return Response(status_code=204)


@router.post("/work_pools/{name}/get_scheduled_flow_runs")
async def get_scheduled_flow_runs(name: str, body: WorkerRunsPoll, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        found = await work_pools.get_scheduled_flow_runs(
            conn,
            name,
            body.work_queue_names,
            body.scheduled_before,
            body.scheduled_after,
            body.limit,
            deps.now(),
        )
    return JSON(found)


@router.post("/work_pools/{name}/workers/heartbeat", status_code=204)
async def worker_heartbeat(name: str, body: WorkerHeartbeat, request: Request) -> Response:
    # The reference answers 204 even when ``return_id`` is set; the client reads an
    # id only from Prefect Cloud.
    async with deps.server(request).db.write() as conn:
        await work_pools.heartbeat(
            conn, name, body.name, body.heartbeat_interval_seconds, deps.now()
        )
    return Response(status_code=204)


@router.post("/work_pools/{name}/workers/filter")
async def filter_workers(name: str, body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await work_pools.filter_workers(
            conn, name, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.delete("/work_pools/{name}/workers/{worker_name}", status_code=204)
async def delete_worker(name: str, worker_name: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await work_pools.delete_worker(conn, name, worker_name)
    return Response(status_code=204)


@router.websocket("/work_pools/{name}/workers/connect")
async def worker_channel(websocket: WebSocket) -> None:
    """Not implemented: a 404 on the upgrade makes 3.9 workers use REST heartbeats."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        detail = {"detail": "The worker channel is not available; use REST heartbeats."}
        await websocket.send_denial_response(JSON(detail, status_code=404))
    else:
        await websocket.close(code=1008, reason="endpoint_unavailable")


@router.post("/work_pools/{name}/queues", status_code=201)
async def create_work_queue(name: str, body: WorkQueueCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        queue = await work_queues.create_queue(conn, name, body.wire(), deps.now())
    return JSON(queue, status_code=201)


@router.post("/work_pools/{name}/queues/filter")
async def filter_work_queues(name: str, body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await work_queues.filter_queues(
            conn, name, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.get("/work_pools/{name}/queues/{queue_name}")
async def read_work_queue_by_name(name: str, queue_name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await work_queues.read_queue_by_name(conn, name, queue_name, deps.now()))


@router.post("/work_pools/{name}/concurrency_status")
async def read_concurrency_status(
    name: str, request: Request, body: PoolConcurrencyStatusQuery | None = None
) -> Response:
    """The runs holding the pool's slots, by queue (``prefect work-pool slots``)."""
    body = body or PoolConcurrencyStatusQuery()
    async with deps.server(request).db.read() as conn:
        found = await queue_status.pool_concurrency(
            conn, name, body.page, body.per_page, body.flow_run_limit, deps.now()
        )
    return JSON(found)


@router.get("/collections/views/aggregate-worker-metadata")
async def aggregate_worker_metadata() -> Response:
    # Worker types come from the client's own packages; the client swallows failures
    # here and `{}` just means "no extra collections known".
    return JSON({})
