"""/block_documents routes: saved block values (``Block.save/load/delete``, ``prefect block``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import Body, Filter
from headrace.storage import block_documents

router = APIRouter(prefix="/block_documents")


class BlockDocumentCreate(Body):
    # The client's ``BlockDocumentName``: lowercase letters, digits and dashes.
    name: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[a-z0-9-]+$")
    data: dict[str, Any] = Field(default_factory=dict)
    block_schema_id: UUID
    block_type_id: UUID
    is_anonymous: bool = False


class BlockDocumentUpdate(Body):
    block_schema_id: UUID | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    merge_existing_data: bool = True


class BlockDocumentFilter(Filter):
    include_secrets: bool = False


@router.post("/", status_code=201)
async def create_block_document(body: BlockDocumentCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        created = await block_documents.create_block_document(conn, body.wire(), deps.now())
    return JSON(created, status_code=201)


@router.post("/filter")
async def filter_block_documents(body: BlockDocumentFilter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_documents.filter_block_documents(
            conn, body.wire(), body.limit, body.offset, body.include_secrets
        )
    return JSON(found)


@router.post("/count")
async def count_block_documents(body: Filter, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await block_documents.count_block_documents(conn, body.wire()))


@router.get("/{document_id}")
async def read_block_document(
    document_id: str, request: Request, include_secrets: bool = False
) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await block_documents.read_block_document(
            conn, deps.uuid_path(document_id, "block document id"), include_secrets
        )
    return JSON(found)


@router.patch("/{document_id}", status_code=204)
async def update_block_document(
    document_id: str, body: BlockDocumentUpdate, request: Request
) -> Response:
    changes = body.wire(exclude_unset=True)
    changes["merge_existing_data"] = body.merge_existing_data
    async with deps.server(request).db.write() as conn:
        await block_documents.update_block_document(
            conn, deps.uuid_path(document_id, "block document id"), changes, deps.now()
        )
    return Response(status_code=204)


@router.delete("/{document_id}", status_code=204)
async def delete_block_document(document_id: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await block_documents.delete_block_document(
            conn, deps.uuid_path(document_id, "block document id")
        )
    return Response(status_code=204)
