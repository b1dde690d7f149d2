"""/v2/concurrency_limits: global concurrency limits, leases and rate limits.

A request for slots that do not fit is held open for up to `HOLD_SECONDS`, and
granted the moment a release, a lease expiry or decay makes room; only then is it
answered 423 with ``Retry-After``, which the client sleeps before asking again.
So a waiter is let in when a slot frees rather than at its next poll. A request
whose client has gone (its timeout passed) is not granted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import MAX_OFFSET, Body
from headrace.storage import concurrency_leases, concurrency_limits
from headrace.storage.concurrency_leases import Grant, Holder

router = APIRouter(prefix="/v2/concurrency_limits")

HOLD_SECONDS = 5.0
"""Longest a request waits for room before it is answered 423."""
RETRY_AFTER_SECONDS = 0.1
"""``Retry-After`` of a 423: the client is held again as soon as it comes back."""
MAX_SLOTS = 2**31 - 1
MAX_LEASE_SECONDS = 24 * 3600.0
MIN_LEASE_SECONDS = 1.0
_PAD_SECONDS = 0.002  # wake a hair after decay made room

LimitName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/%&><]+$")]
Slots = Annotated[int, Field(ge=0, le=MAX_SLOTS)]
Decay = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
LeaseSeconds = Annotated[
    float, Field(ge=MIN_LEASE_SECONDS, le=MAX_LEASE_SECONDS, allow_inf_nan=False)
]


class LimitCreate(Body):
    name: LimitName
    limit: Slots
    active: bool = True
    active_slots: Slots = 0
    slot_decay_per_second: Decay = 0.0


class LimitUpdate(Body):
    name: LimitName | None = None
    limit: Slots | None = None
    active: bool | None = None
    active_slots: Slots | None = None
    slot_decay_per_second: Decay | None = None


class Page(Body):
    limit: int | None = Field(default=None, ge=0, le=10_000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class LeaseHolder(Body):
    type: Literal["flow_run", "task_run", "deployment"]
    id: UUID


class SlotRequest(Body):
    names: list[LimitName] = Field(min_length=1)
    slots: int = Field(ge=1, le=MAX_SLOTS)
    mode: Literal["concurrency", "rate_limit"] = "concurrency"


class LeaseRequest(SlotRequest):
    lease_duration: LeaseSeconds = 300.0
    holder: LeaseHolder | None = None


class SlotRelease(Body):
    names: list[LimitName] = Field(min_length=1)
    slots: int = Field(ge=1, le=MAX_SLOTS)
    occupancy_seconds: float | None = Field(default=None, ge=0)


class LeaseRelease(Body):
    lease_id: UUID


class LeaseRenewal(Body):
    lease_duration: LeaseSeconds = 300.0


Attempt = Callable[[AsyncConnection], Awaitable[Grant]]


async def hold_for_slots(request: Request, attempt: Attempt) -> Grant:
    """Try ``attempt`` until it grants, the hold ends or the client goes away.

    Each try is its own short write transaction; between tries the request waits
    for a release notice, or for the moment decay or a lease expiry makes room.
    """
    server = deps.server(request)
    hold_ends = time.monotonic() + HOLD_SECONDS
    while True:
        async with server.db.write() as conn:
            grant = await attempt(conn)
        if grant.granted:
            return grant
        wait = hold_ends - time.monotonic()
        if grant.retry_at is not None:
            wait = min(wait, (grant.retry_at - deps.now()).total_seconds() + _PAD_SECONDS)
        if hold_ends <= time.monotonic() or await request.is_disconnected():
            return grant
        await server.slot_waiters.wait(max(wait, 0.0))
        if await request.is_disconnected():
            return grant


def locked(grant: Grant, detail: str = "Concurrency slots are not available.") -> Response:
    """423 with the ``Retry-After`` (seconds, fractional) the client sleeps."""
    retry = RETRY_AFTER_SECONDS
    if grant.retry_at is not None:
        until = (grant.retry_at - deps.now()).total_seconds()
        retry = min(retry, max(0.01, until))
    return JSON({"detail": detail}, status_code=423, headers={"Retry-After": f"{retry:.3f}"})


def leases_made(request: Request, grant: Grant) -> None:
    """A new lease may expire before the expiry service's next moment."""
    if grant.expires is not None:
        deps.server(request).concurrency_lease_made(grant.expires)


def slots_freed(request: Request) -> None:
    deps.server(request).slot_waiters.released()


# -- limits -----------------------------------------------------------------------


@router.post("/", status_code=201)
async def create_limit(body: LimitCreate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        created = await concurrency_limits.create_limit(conn, body.wire(), deps.now())
    return JSON(created, status_code=201)


@router.post("/filter")
async def filter_limits(body: Page, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        found = await concurrency_limits.filter_limits(conn, body.limit, body.offset, deps.now())
    return JSON(found)


@router.get("/{id_or_name}")
async def read_limit(id_or_name: str, request: Request) -> Response:
    async with deps.server(request).db.read() as conn:
        return JSON(await concurrency_limits.read_limit(conn, id_or_name, deps.now()))


@router.patch("/{id_or_name}", status_code=204)
async def update_limit(id_or_name: str, body: LimitUpdate, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await concurrency_limits.update_limit(
            conn, id_or_name, body.wire(exclude_unset=True), deps.now()
        )
    slots_freed(request)  # a raised or disabled limit may let waiters in
    return Response(status_code=204)


@router.delete("/{id_or_name}", status_code=204)
async def delete_limit(id_or_name: str, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        await concurrency_limits.delete_limit(conn, id_or_name)
    slots_freed(request)
    return Response(status_code=204)


# -- slots --------------------------------------------------------------------------


@router.post("/increment")
async def increment(body: SlotRequest, request: Request) -> Response:
    """Take slots without a lease: ``rate_limit()`` (decaying) or legacy concurrency."""

    async def attempt(conn: AsyncConnection) -> Grant:
        return await concurrency_leases.acquire(conn, body.names, body.slots, body.mode, deps.now())

    grant = await hold_for_slots(request, attempt)
    return JSON(grant.limits) if grant.granted else locked(grant)


@router.post("/increment-with-lease")
async def increment_with_lease(body: LeaseRequest, request: Request) -> Response:
    """Take slots held by a lease that the client renews and releases."""
    holder = None if body.holder is None else Holder(body.holder.type, str(body.holder.id))

    async def attempt(conn: AsyncConnection) -> Grant:
        return await concurrency_leases.acquire(
            conn, body.names, body.slots, body.mode, deps.now(), body.lease_duration, holder
        )

    grant = await hold_for_slots(request, attempt)
    if not grant.granted:
        return locked(grant)
    leases_made(request, grant)
    return JSON({"lease_id": grant.lease_id, "limits": grant.limits})


@router.post("/decrement")
async def decrement(body: SlotRelease, request: Request) -> Response:
    async with deps.server(request).db.write() as conn:
        found = await concurrency_leases.release_unleased(conn, body.names, body.slots, deps.now())
    slots_freed(request)
    return JSON(found)


@router.post("/decrement-with-lease", status_code=204)
async def decrement_with_lease(body: LeaseRelease, request: Request) -> Response:
    """Release a lease's slots; an unknown or expired lease is fine (204)."""
    async with deps.server(request).db.write() as conn:
        released = await concurrency_leases.release(conn, [str(body.lease_id)])
    if released:
        slots_freed(request)
    return Response(status_code=204)


@router.post("/leases/{lease_id}/renew", status_code=204)
async def renew_lease(lease_id: str, body: LeaseRenewal, request: Request) -> Response:
    """Extend a live lease; 410 once it has expired or was released (as the reference)."""
    lease = deps.uuid_path(lease_id, "lease id")
    async with deps.server(request).db.write() as conn:
        renewed = await concurrency_leases.renew(conn, lease, body.lease_duration, deps.now())
    if not renewed:
        detail = "Lease not found - it may have expired or been revoked"
        return JSON({"detail": detail}, status_code=410)
    return Response(status_code=204)
