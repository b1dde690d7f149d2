"""/flow_runs/{id}/input* and /flow_runs/{id}/resume."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import Field
from starlette.responses import Response

from headrace.api import deps
from headrace.api import orchestration as answers
from headrace.api.responses import JSON
from headrace.api.schemas import Body as RequestBody
from headrace.events import emit
from headrace.storage import flow_run_inputs as inputs

router = APIRouter(prefix="/flow_runs/{run_id}")


class InputCreate(RequestBody):
    key: str = Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9_\-.]+$")
    value: str
    sender: str | None = Field(default=None, max_length=255)


class InputFilter(RequestBody):
    prefix: str = Field(max_length=255)
    limit: int = Field(default=1, ge=1, le=10_000)
    exclude_keys: list[str] = Field(default_factory=list)


@router.post("/input", status_code=201)
async def create_input(run_id: str, body: InputCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await inputs.create_input(
            conn,
            deps.uuid_path(run_id, "flow run id"),
            body.key,
            body.value,
            body.sender,
            deps.now(),
        )
    return Response(status_code=201)


@router.post("/input/filter")
async def filter_inputs(run_id: str, body: InputFilter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await inputs.filter_inputs(
            conn, deps.uuid_path(run_id, "flow run id"), body.prefix, body.limit, body.exclude_keys
        )
    return JSON(found)


@router.get("/input/{key}")
async def read_input(run_id: str, key: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await inputs.read_input(conn, deps.uuid_path(run_id, "flow run id"), key)
    # The client reads the stored text back byte for byte.
    return Response(found["value"], media_type="application/json")


@router.delete("/input/{key}", status_code=204)
async def delete_input(run_id: str, key: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await inputs.delete_input(conn, deps.uuid_path(run_id, "flow run id"), key)
    return Response(status_code=204)


@router.post("/resume")
async def resume(
    run_id: str, request: Request, run_input: dict[str, Any] | None = Body(None, embed=True)
) -> Response:
    server = deps.server(request)
    now = deps.now()
    async with server.db.write() as conn:
        outcome = await inputs.resume(conn, deps.uuid_path(run_id, "flow run id"), run_input, now)
    if isinstance(outcome, inputs.Refusal):
        kind = "abort_details" if outcome.status.value == "ABORT" else "reject_details"
        body = {
            "state": outcome.state,
            "status": outcome.status.value,
            "details": {"type": kind, "reason": outcome.reason},
        }
        return JSON(body)
    if outcome.written is not None:
        event = emit.flow_run_state_event(
            outcome.run, outcome.written, outcome.previous, outcome.flow_name, now
        )
        await server.pipeline.publish([event])
    return answers.result(outcome.decision, outcome.written)
