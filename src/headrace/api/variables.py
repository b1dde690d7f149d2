"""/variables routes (by name, as the client uses them, and by id)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Body, Filter
from headrace.storage import variables

router = APIRouter(prefix="/variables")

VariableName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-z0-9_-]+$")]
"""The client's ``VariableName``: lowercase letters, digits, dashes and underscores."""


class VariableCreate(Body):
    name: VariableName
    value: Any
    tags: list[str] | None = None


class VariableUpdate(Body):
    name: VariableName | None = None
    value: Any = None
    tags: list[str] | None = None


@router.post("/", status_code=201)
async def create_variable(body: VariableCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        created = await variables.create_variable(conn, body.wire(), deps.now())
    return JSON(created, status_code=201)


@router.post("/filter")
async def filter_variables(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await variables.filter_variables(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.post("/count")
async def count_variables(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await variables.count_variables(conn, body.wire()))


@router.get("/name/{name}")
async def read_variable_by_name(name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await variables.read_variable_by_name(conn, name))


@router.patch("/name/{name}", status_code=204)
async def update_variable_by_name(name: str, body: VariableUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await variables.update_variable(conn, body.wire(exclude_unset=True), deps.now(), name=name)
    return Response(status_code=204)


@router.delete("/name/{name}", status_code=204)
async def delete_variable_by_name(name: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await variables.delete_variable(conn, name=name)
    return Response(status_code=204)


@router.get("/{variable_id}")
async def read_variable(variable_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await variables.read_variable(conn, deps.uuid_path(variable_id, "variable id"))
    return JSON(found)


@router.patch("/{variable_id}", status_code=204)
async def update_variable(variable_id: str, body: VariableUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await variables.update_variable(
            conn,
            body.wire(exclude_unset=True),
            deps.now(),
            variable_id=deps.uuid_path(variable_id, "variable id"),
        )
    return Response(status_code=204)


@router.delete("/{variable_id}", status_code=204)
async def delete_variable(variable_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await variables.delete_variable(
            conn, variable_id=deps.uuid_path(variable_id, "variable id")
        )
    return Response(status_code=204)
