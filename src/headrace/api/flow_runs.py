"""/flow_runs and /flow_run_states routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api import orchestration as answers
from headrace.api.responses import JSON
from headrace.api.schemas import Filter, FlowRunCreate, FlowRunUpdate, SetState
from headrace.events import emit
from headrace.storage import flow_runs

router = APIRouter()


@router.post("/flow_runs/")
async def create_flow_run(body: FlowRunCreate, request: Request) -> Response:
    server = deps.server(request)
    now = deps.now()
    data = body.wire(exclude_unset=False)
    async with server.db.write() as conn:
        run, created = await flow_runs.create_flow_run(conn, data, now)
        flow_name = await flow_runs.flow_name(conn, run["flow_id"]) if created else ""
    if created:
        await server.pipeline.publish(
            [emit.flow_run_state_event(run, run["state"], None, flow_name, now)]
        )
        server.flow_runs_changed(run["state"])
    return JSON(run, status_code=201 if created else 200)


@router.post("/flow_runs/filter")
async def filter_flow_runs(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await flow_runs.filter_flow_runs(
            conn, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.post("/flow_runs/count")
async def count_flow_runs(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await flow_runs.count_flow_runs(conn, body.wire()))


@router.get("/flow_runs/{run_id}")
async def read_flow_run(run_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        run = await flow_runs.read_flow_run(conn, deps.uuid_path(run_id, "flow run id"), deps.now())
    return JSON(run)


@router.patch("/flow_runs/{run_id}", status_code=204)
async def update_flow_run(run_id: str, body: FlowRunUpdate, request: Request) -> Response:
    changes = body.wire(exclude_unset=True)
    async with deps.server(request).db.write() as conn:
        await flow_runs.update_flow_run(
            conn, deps.uuid_path(run_id, "flow run id"), changes, deps.now()
        )
    return Response(status_code=204)


@router.patch("/flow_runs/{run_id}/labels", status_code=204)
async def update_flow_run_labels(
    run_id: str, request: Request, labels: dict[str, Any] = Body(...)
) -> Response:
    async with deps.server(request).db.write() as conn:
        await flow_runs.merge_labels(
            conn, deps.uuid_path(run_id, "flow run id"), labels, deps.now()
        )
    return Response(status_code=204)


@router.delete("/flow_runs/{run_id}", status_code=204)
async def delete_flow_run(run_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await flow_runs.delete_flow_run(conn, deps.uuid_path(run_id, "flow run id"))
    return Response(status_code=204)


@router.post("/flow_runs/{run_id}/set_state")
async def set_flow_run_state(run_id: str, body: SetState, request: Request) -> Response:
    server = deps.server(request)
    now = deps.now()
    proposed = body.state.wire(exclude_none=False)
    async with server.db.write() as conn:
        transition = await flow_runs.set_flow_run_state(
            conn, deps.uuid_path(run_id, "flow run id"), proposed, body.force, now
        )
    if transition.written is not None:
        event = emit.flow_run_state_event(
            transition.run, transition.written, transition.previous, transition.flow_name, now
        )
        await server.pipeline.publish([event])
        server.flow_runs_changed(transition.written)  # wake the services it concerns
    return answers.result(transition.decision, transition.written)


@router.get("/flow_run_states/")
async def read_flow_run_states(request: Request, flow_run_id: str = Query(...)) -> Response:
    async with deps.server(request).db.read() as conn:
        states = await flow_runs.read_states(conn, deps.uuid_path(flow_run_id, "flow_run_id"))
    return JSON(states)


@router.get("/flow_run_states/{state_id}")
async def read_flow_run_state(state_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await flow_runs.read_state(conn, deps.uuid_path(state_id, "state id")))
