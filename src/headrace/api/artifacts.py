"""/artifacts routes: artifacts, and the latest artifact of each key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Body, Filter
from headrace.storage import artifacts

router = APIRouter(prefix="/artifacts")


class ArtifactCreate(Body):
    # The client's ``ArtifactKey``: lowercase letters, digits and dashes.
    key: str | None = Field(default=None, max_length=255, pattern=r"^[a-z0-9-]*$")
    type: str | None = Field(default=None, max_length=255)
    description: str | None = None
    data: Any = None
    metadata_: dict[str, str] | None = None
    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None


class ArtifactUpdate(Body):
    data: Any = None
    description: str | None = None
    metadata_: dict[str, str] | None = None


@router.post("/", status_code=201)
async def create_artifact(body: ArtifactCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        created = await artifacts.create_artifact(conn, body.wire(), deps.now())
    return JSON(created, status_code=201)


@router.post("/filter")
async def filter_artifacts(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await artifacts.filter_artifacts(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.post("/count")
async def count_artifacts(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await artifacts.count_artifacts(conn, body.wire()))


@router.post("/latest/filter")
async def filter_latest_artifacts(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await artifacts.filter_latest_artifacts(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.post("/latest/count")
async def count_latest_artifacts(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await artifacts.count_latest_artifacts(conn, body.wire()))


@router.get("/{key}/latest")
async def read_latest_artifact(key: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await artifacts.read_latest_artifact(conn, key))


@router.get("/{artifact_id}")
async def read_artifact(artifact_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await artifacts.read_artifact(conn, deps.uuid_path(artifact_id, "artifact id"))
    return JSON(found)


@router.patch("/{artifact_id}", status_code=204)
async def update_artifact(artifact_id: str, body: ArtifactUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await artifacts.update_artifact(
            conn,
            deps.uuid_path(artifact_id, "artifact id"),
            body.wire(exclude_unset=True),
            deps.now(),
        )
    return Response(status_code=204)


@router.delete("/{artifact_id}", status_code=204)
async def delete_artifact(artifact_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await artifacts.delete_artifact(
            conn, deps.uuid_path(artifact_id, "artifact id"), deps.now()
        )
    return Response(status_code=204)
