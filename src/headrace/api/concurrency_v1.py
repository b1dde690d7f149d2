"""/concurrency_limits: v1 task tag limits, the other face of the v2 limits ``tag:<tag>``.

``prefect concurrency-limit`` manages them here; the 3.9.1 task engine enforces
them through the v2 lease routes, and ``prefect.concurrency.v1`` through
``/increment`` and ``/decrement`` below, whose slots are held by leases that last
until released (v1 clients never renew).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from headrace.api import deps
from headrace.api.concurrency import MAX_SLOTS, Page, hold_for_slots, locked, slots_freed
from headrace.api.responses import JSON
from headrace.api.schemas import Body
from headrace.errors import InvalidInput
from headrace.storage import concurrency_leases, concurrency_limits
from headrace.storage.concurrency_leases import Grant, ZeroLimit

router = APIRouter(prefix="/concurrency_limits")

# The v2 name "tag:<tag>" must fit the 255 characters of a limit name.
Tag = Annotated[str, Field(min_length=1, max_length=251)]


class TagLimitCreate(Body):
    tag: Tag
    concurrency_limit: int = Field(ge=0, le=MAX_SLOTS)


class TagSlots(Body):
    names: list[Tag] = Field(min_length=1)
    task_run_id: UUID
    occupancy_seconds: float | None = None


class Reset(Body):
    slot_override: list[UUID] | None = None


def _tag(value: str) -> str:
    if not value or len(value) > 251:
        raise InvalidInput("a tag is 1 to 251 characters")
    return value


@router.post("/")
async def create_tag_limit(body: TagLimitCreate, request: Request) -> Response:
    """Create the tag's limit (201), or change the limit of the existing one (200)."""
    async with deps.server(request).db.write() as conn:
        found, created = await concurrency_limits.upsert_tag_limit(
            conn, body.tag, body.concurrency_limit, deps.now()
        )
    slots_freed(request)
    return JSON(found, status_code=201 if created else 200)


@router.get("/tag/{tag}")
async def read_tag_limit(tag: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await concurrency_limits.read_tag_limit(conn, _tag(tag), deps.now()))


@router.get("/{limit_id}")
async def read_tag_limit_by_id(limit_id: str, request: Request) -> Response:
    limit_id = deps.uuid_path(limit_id, "concurrency limit id")
    async with deps.server(request).db.read() as conn:
        return JSON(await concurrency_limits.read_tag_limit_by_id(conn, limit_id, deps.now()))


@router.post("/filter")
async def filter_tag_limits(body: Page, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await concurrency_limits.filter_tag_limits(
            conn, body.limit, body.offset, deps.now()
        )
    return JSON(found)


@router.post("/tag/{tag}/reset")
async def reset_tag_limit(tag: str, body: Reset, request: Request) -> Response:
    override = [str(i) for i in body.slot_override or []]
    async with deps.server(request).db.write() as conn:
        await concurrency_leases.reset_tag(conn, _tag(tag), override, deps.now())
    slots_freed(request)
    return JSON(None)


@router.delete("/tag/{tag}")
async def delete_tag_limit(tag: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await concurrency_limits.delete_tag_limit(conn, _tag(tag), None)
    slots_freed(request)
    return JSON(None)


@router.delete("/{limit_id}")
async def delete_tag_limit_by_id(limit_id: str, request: Request) -> Response:
    limit_id = deps.uuid_path(limit_id, "concurrency limit id")
    async with deps.server(request).db.write() as conn:
        await concurrency_limits.delete_tag_limit(conn, None, limit_id)
    slots_freed(request)
    return JSON(None)


@router.post("/increment")
async def increment(body: TagSlots, request: Request) -> Response:
    """One slot per tag for the task run; a limit of 0 is 423 without Retry-After."""
    run_id = str(body.task_run_id)

    async def attempt(conn: AsyncConnection) -> Grant:
        return await concurrency_leases.acquire_for_tags(conn, body.names, run_id, deps.now())

    try:
        grant = await hold_for_slots(request, attempt)
    except ZeroLimit as exc:
        return JSON({"detail": str(exc)}, status_code=423)
    if not grant.granted:
        return locked(grant, "Concurrency limit for these tags has been reached")
    return JSON(grant.limits)


@router.post("/decrement")
async def decrement(body: TagSlots, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        found = await concurrency_leases.release_for_tags(conn, body.names, str(body.task_run_id))
    slots_freed(request)
    return JSON(found)
