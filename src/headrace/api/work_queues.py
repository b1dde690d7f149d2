"""/work_queues routes: queues by id, pool-less (agent-era) queues, status views.

Queues inside a named pool are under /work_pools/{name}/queues (``work_pools.py``).
A queue created here without a pool goes to the ``default-agent-pool``, as in the
reference.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api.deployment_schemas import (
    ConcurrencyStatusQuery,
    QueueRunsPoll,
    WorkQueueCreate,
    WorkQueueUpdate,
)
from headrace.api.responses import JSON
from headrace.api.schemas import Filter
from headrace.storage import queue_status, work_queues

router = APIRouter()


def _id(value: str) -> str:
    return deps.uuid_path(value, "work queue id")


@router.post("/work_queues/", status_code=201)
async def create_work_queue(body: WorkQueueCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        queue = await work_queues.create_poolless_queue(conn, body.wire(), deps.now())
    return JSON(queue, status_code=201)


@router.post("/work_queues/filter")
async def filter_work_queues(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await work_queues.filter_queues(
            conn, None, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.get("/work_queues/name/{name}")
async def read_work_queue_by_name(name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await work_queues.read_poolless_queue_by_name(conn, name, deps.now()))


@router.get("/work_queues/{queue_id}")
async def read_work_queue(queue_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await work_queues.read_queue(conn, _id(queue_id), deps.now()))


@router.patch("/work_queues/{queue_id}", status_code=204)
async def update_work_queue(queue_id: str, body: WorkQueueUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await work_queues.update_queue(
            conn, _id(queue_id), body.wire(exclude_unset=True), deps.now()
        )
    return Response(status_code=204)


@router.delete("/work_queues/{queue_id}", status_code=204)
async def delete_work_queue(queue_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await work_queues.delete_queue(conn, _id(queue_id))
    return Response(status_code=204)


@router.post("/work_queues/{queue_id}/get_runs")
async def read_work_queue_runs(
    queue_id: str, request: Request, body: QueueRunsPoll | None = None
) -> Response:
    """Scheduled runs of the queue (the CLI's ``read-runs`` and ``preview``); a poll."""
    body = body or QueueRunsPoll()
    async with deps.server(request).db.write() as conn:
        found = await work_queues.runs_in_queue(
            conn, _id(queue_id), body.scheduled_before, body.limit, deps.now()
        )
    return JSON(found)


@router.get("/work_queues/{queue_id}/status")
async def read_work_queue_status(queue_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await queue_status.queue_health(conn, _id(queue_id), deps.now()))


@router.post("/work_queues/{queue_id}/concurrency_status")
async def read_work_queue_concurrency_status(
    queue_id: str, request: Request, body: ConcurrencyStatusQuery | None = None
) -> Response:
    body = body or ConcurrencyStatusQuery()
    async with deps.server(request).db.read() as conn:
        found = await queue_status.queue_concurrency(
            conn, _id(queue_id), body.page, body.per_page, deps.now()
        )
    return JSON(found)
