"""/task_runs and /task_run_states routes."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api import orchestration as answers
from headrace.api.responses import JSON
from headrace.api.schemas import Filter, SetState, TaskRunCreate, TaskRunUpdate
from headrace.storage import task_queue, task_runs

router = APIRouter()


@router.post("/task_runs/")
async def create_task_run(body: TaskRunCreate, request: Request) -> Response:
    server = deps.server(request)
    async with server.db.write() as conn:
        run, created = await task_runs.create_task_run(conn, body.wire(), deps.now())
    if created and task_queue.is_deferred_scheduled(run["state"]):
        server.task_queue.enqueued([run["task_key"]])
    return JSON(run, status_code=201 if created else 200)


@router.post("/task_runs/filter")
async def filter_task_runs(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await task_runs.filter_task_runs(
            conn, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.post("/task_runs/count")
async def count_task_runs(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await task_runs.count_task_runs(conn, body.wire()))


@router.get("/task_runs/{run_id}")
async def read_task_run(run_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        run = await task_runs.read_task_run(conn, deps.uuid_path(run_id, "task run id"), deps.now())
    return JSON(run)


@router.patch("/task_runs/{run_id}", status_code=204)
async def update_task_run(run_id: str, body: TaskRunUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await task_runs.update_task_run(
            conn, deps.uuid_path(run_id, "task run id"), body.wire(exclude_unset=True), deps.now()
        )
    return Response(status_code=204)


@router.delete("/task_runs/{run_id}", status_code=204)
async def delete_task_run(run_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await task_runs.delete_task_run(conn, deps.uuid_path(run_id, "task run id"))
    return Response(status_code=204)


@router.post("/task_runs/{run_id}/set_state")
async def set_task_run_state(run_id: str, body: SetState, request: Request) -> Response:
    server = deps.server(request)
    async with server.db.write() as conn:
        decision, written, run = await task_runs.set_task_run_state(
            conn,
            deps.uuid_path(run_id, "task run id"),
            body.state.wire(),
            body.force,
            deps.now(),
        )
    if task_queue.is_deferred_scheduled(written):
        server.task_queue.enqueued([run["task_key"]])
    return answers.result(decision, written)


@router.get("/task_run_states/")
async def read_task_run_states(request: Request, task_run_id: str = Query(...)) -> Response:
    async with deps.server(request).db.read() as conn:
        states = await task_runs.read_states(conn, deps.uuid_path(task_run_id, "task_run_id"))
    return JSON(states)
