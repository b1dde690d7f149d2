"""/deployments routes (with schedules), and the automation stubs deployments call."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from headrace.api import deps
from headrace.api.deployment_schemas import (
    DeploymentBranch,
    DeploymentCreate,
    DeploymentFlowRunCreate,
    DeploymentRunsPoll,
    DeploymentUpdate,
    ScheduleCreate,
    ScheduleUpdate,
)
from headrace.api.responses import JSON
from headrace.api.schemas import Filter
from headrace.events import emit
from headrace.storage import deployment_branches, deployments, flow_runs

router = APIRouter()


def _id(value: str) -> str:
    return deps.uuid_path(value, "deployment id")


@router.post("/deployments/")
async def create_deployment(body: DeploymentCreate, request: Request) -> Response:
    """Upsert by (flow_id, name): 201 when new, 200 when an existing one was updated."""
    data = body.wire(exclude_unset=True)
    # Nested defaults (a schedule's active flag, an interval's anchor) must be kept.
    data.update(flow_id=str(body.flow_id), name=body.name)
    data["schedules"] = [s.wire() for s in body.schedules]
    async with deps.server(request).db.write() as conn:
        deployment, created = await deployments.upsert_deployment(conn, data, deps.now())
    deps.server(request).deployments_changed()  # the scheduler looks again
    return JSON(deployment, status_code=201 if created else 200)


@router.post("/deployments/filter")
async def filter_deployments(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await deployments.filter_deployments(
            conn, body.wire(), body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.post("/deployments/count")
async def count_deployments(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await deployments.count_deployments(conn, body.wire()))


@router.post("/deployments/get_scheduled_flow_runs")
async def get_scheduled_flow_runs(body: DeploymentRunsPoll, request: Request) -> Response:
    ids = [str(i) for i in body.deployment_ids]
    async with deps.server(request).db.write() as conn:
        found = await deployments.get_scheduled_flow_runs(
            conn, ids, body.scheduled_before, body.limit, deps.now()
        )
    return JSON(found)


@router.get("/deployments/name/{flow_name}/{deployment_name}")
async def read_deployment_by_name(
    flow_name: str, deployment_name: str, request: Request
) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await deployments.read_deployment_by_name(
            conn, flow_name, deployment_name, deps.now()
        )
    return JSON(found)


@router.get("/deployments/{deployment_id}")
async def read_deployment(deployment_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await deployments.read_deployment(conn, _id(deployment_id), deps.now()))


@router.patch("/deployments/{deployment_id}", status_code=204)
async def update_deployment(
    deployment_id: str, body: DeploymentUpdate, request: Request
) -> Response:
    async with deps.server(request).db.write() as conn:
        changes = body.wire(exclude_unset=True)
        if body.schedules is not None:
            changes["schedules"] = [s.wire() for s in body.schedules]
        await deployments.update_deployment(conn, _id(deployment_id), changes, deps.now())
    deps.server(request).deployments_changed()  # the scheduler looks again
    return Response(status_code=204)


@router.post("/deployments/{deployment_id}/pause_deployment", status_code=204)
async def pause_deployment(deployment_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await deployments.update_deployment(conn, _id(deployment_id), {"paused": True}, deps.now())
    deps.server(request).deployments_changed()  # the scheduler looks again
    return Response(status_code=204)


@router.post("/deployments/{deployment_id}/resume_deployment", status_code=204)
async def resume_deployment(deployment_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await deployments.update_deployment(conn, _id(deployment_id), {"paused": False}, deps.now())
    deps.server(request).deployments_changed()  # the scheduler looks again
    return Response(status_code=204)


@router.delete("/deployments/{deployment_id}", status_code=204)
async def delete_deployment(deployment_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await deployments.delete_deployment(conn, _id(deployment_id))
    return Response(status_code=204)


@router.post("/deployments/{deployment_id}/create_flow_run")
async def create_flow_run(
    deployment_id: str, body: DeploymentFlowRunCreate, request: Request
) -> Response:
    """A run of the deployment, SCHEDULED for now unless the body gives a state."""
    server = deps.server(request)
    now = deps.now()
    async with server.db.write() as conn:
        run_body = await deployments.flow_run_body(conn, _id(deployment_id), body.wire(), now)
        run, created = await flow_runs.create_flow_run(conn, run_body, now)
        flow_name = await flow_runs.flow_name(conn, run["flow_id"]) if created else ""
    if created:
        await server.pipeline.publish(
            [emit.flow_run_state_event(run, run["state"], None, flow_name, now)]
        )
        server.flow_runs_changed(run["state"])
    return JSON(run, status_code=201)


@router.post("/deployments/{deployment_id}/schedules", status_code=201)
async def create_schedules(
    deployment_id: str, body: list[ScheduleCreate], request: Request
) -> Response:
    schedules = [s.wire() for s in body]
    async with deps.server(request).db.write() as conn:
        created = await deployments.create_schedules(
            conn, _id(deployment_id), schedules, deps.now()
        )
    deps.server(request).deployments_changed()  # the scheduler looks again
    return JSON(created, status_code=201)


@router.get("/deployments/{deployment_id}/schedules")
async def read_schedules(deployment_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await deployments.read_schedules(conn, _id(deployment_id)))


@router.patch("/deployments/{deployment_id}/schedules/{schedule_id}", status_code=204)
async def update_schedule(
    deployment_id: str, schedule_id: str, body: ScheduleUpdate, request: Request
) -> Response:
    changes = body.wire(exclude_unset=True)
    if body.schedule is not None:
        changes["schedule"] = body.schedule.wire()
    async with deps.server(request).db.write() as conn:
        await deployments.update_schedule(
            conn,
            _id(deployment_id),
            deps.uuid_path(schedule_id, "schedule id"),
            changes,
            deps.now(),
        )
    deps.server(request).deployments_changed()  # the scheduler looks again
    return Response(status_code=204)


@router.delete("/deployments/{deployment_id}/schedules/{schedule_id}", status_code=204)
async def delete_schedule(deployment_id: str, schedule_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await deployments.delete_schedule(
            conn, _id(deployment_id), deps.uuid_path(schedule_id, "schedule id")
        )
    deps.server(request).deployments_changed()  # the scheduler looks again
    return Response(status_code=204)


@router.post("/deployments/{deployment_id}/branch", status_code=201)
async def create_branch(deployment_id: str, body: DeploymentBranch, request: Request) -> Response:
    """A copy of the deployment named ``{name}:{branch}`` (see storage.deployment_branches)."""
    overrides = None
    if body.overrides is not None:
        overrides = body.overrides.wire(exclude_unset=True)
        if body.overrides.schedules is not None:
            overrides["schedules"] = [s.wire() for s in body.overrides.schedules]
    async with deps.server(request).db.write() as conn:
        branch = await deployment_branches.create_branch(
            conn,
            _id(deployment_id),
            body.branch,
            body.options.schedule_handling,
            overrides,
            deps.now(),
        )
    deps.server(request).deployments_changed()  # the scheduler looks again
    return JSON(branch, status_code=201)


# headrace has no automations yet. Every deployment apply clears the automations the
# previous version owned, and `prefect deployment inspect` lists related ones, so
# both answer as if there were none.


@router.delete("/automations/owned-by/{resource_id}", status_code=202)
async def delete_owned_automations(resource_id: str) -> Response:
    return Response(status_code=202)


@router.get("/automations/related-to/{resource_id}")
async def read_related_automations(resource_id: str) -> Response:
    return JSON([])
