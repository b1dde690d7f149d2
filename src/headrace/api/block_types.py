"""/block_types, /block_schemas and /block_capabilities routes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Body, Filter
from headrace.storage import block_documents, block_schemas, block_types

router = APIRouter()

SLUG_PATTERN = r"^[a-z0-9-]+$"
"""The client's ``BlockTypeSlug``: lowercase letters, digits and dashes."""


class BlockTypeCreate(Body):
    name: str = Field(min_length=1, max_length=255, pattern=r"^[^/%&><]+$")
    slug: str = Field(max_length=255, pattern=SLUG_PATTERN)
    logo_url: str | None = None
    documentation_url: str | None = None
    description: str | None = None
    code_example: str | None = None


class BlockTypeUpdate(Body):
    logo_url: str | None = None
    documentation_url: str | None = None
    description: str | None = None
    code_example: str | None = None


class BlockSchemaCreate(Body):
    fields: dict[str, Any] = Field(default_factory=dict)
    block_type_id: UUID
    capabilities: list[str] = Field(default_factory=list)
    version: str = Field(default=block_schemas.DEFAULT_VERSION, min_length=1, max_length=255)


# -- block types -------------------------------------------------------------------


@router.post("/block_types/", status_code=201)
async def create_block_type(body: BlockTypeCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        created = await block_types.create_block_type(conn, body.wire(), deps.now())
    return JSON(created, status_code=201)


@router.post("/block_types/filter")
async def filter_block_types(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_types.filter_block_types(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.get("/block_types/slug/{slug}")
async def read_block_type_by_slug(slug: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await block_types.read_block_type_by_slug(conn, slug))


@router.get("/block_types/slug/{slug}/block_documents")
async def read_block_documents_of_type(
    slug: str,
    request: Request,
    include_secrets: bool = False,
    offset: int = Query(0, ge=0),
    limit: int | None = Query(None, ge=0),
) -> Response:
    async with deps.server(request).db.read() as conn:
        block_type = await block_types.read_block_type_by_slug(conn, slug)
        body = {"block_documents": {"block_type_id": {"any_": [str(block_type["id"])]}}}
        found = await block_documents.filter_block_documents(
            conn, body, limit, offset, include_secrets
        )
    return JSON(found)


@router.get("/block_types/slug/{slug}/block_documents/name/{name}")
async def read_block_document_by_name(
    slug: str, name: str, request: Request, include_secrets: bool = False
) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_documents.read_block_document_by_name(conn, slug, name, include_secrets)
    return JSON(found)


@router.get("/block_types/{block_type_id}")
async def read_block_type(block_type_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_types.read_block_type(
            conn, deps.uuid_path(block_type_id, "block type id")
        )
    return JSON(found)


@router.patch("/block_types/{block_type_id}", status_code=204)
async def update_block_type(
    block_type_id: str, body: BlockTypeUpdate, request: Request
) -> Response:
    async with deps.server(request).db.write() as conn:
        await block_types.update_block_type(
            conn,
            deps.uuid_path(block_type_id, "block type id"),
            body.wire(exclude_unset=True),
            deps.now(),
        )
    return Response(status_code=204)


@router.delete("/block_types/{block_type_id}", status_code=204)
async def delete_block_type(block_type_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await block_types.delete_block_type(conn, deps.uuid_path(block_type_id, "block type id"))
    return Response(status_code=204)


# -- block schemas -----------------------------------------------------------------


@router.post("/block_schemas/", status_code=201)
async def create_block_schema(body: BlockSchemaCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        schema, created = await block_schemas.create_block_schema(conn, body.wire(), deps.now())
    return JSON(schema, status_code=201 if created else 200)


@router.post("/block_schemas/filter")
async def filter_block_schemas(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_schemas.filter_block_schemas(conn, body.wire(), body.limit, body.offset)
    return JSON(found)


@router.get("/block_schemas/checksum/{checksum}")
async def read_block_schema_by_checksum(
    checksum: str, request: Request, version: str | None = None
) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await block_schemas.read_block_schema_by_checksum(conn, checksum, version))


@router.get("/block_schemas/{schema_id}")
async def read_block_schema(schema_id: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_schemas.read_block_schema(
            conn, deps.uuid_path(schema_id, "block schema id")
        )
    return JSON(found)


@router.delete("/block_schemas/{schema_id}", status_code=204)
async def delete_block_schema(schema_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await block_schemas.delete_block_schema(conn, deps.uuid_path(schema_id, "block schema id"))
    return Response(status_code=204)


@router.get("/block_capabilities/")
async def read_block_capabilities(request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await block_schemas.read_capabilities(conn))
