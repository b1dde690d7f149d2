"""Global concurrency limits, as far as the core server needs them.

The task engine asks for slots on ``tag:<tag>`` limits for every task that has tags,
and ``concurrency("name")`` asks for named limits. headrace does not store limits yet
(issue #6), so no limit exists and every request is granted as the reference grants
requests for unknown names: ``200 {"lease_id", "limits": []}``, after which the
client proceeds without holding any slot. Creating a limit is not possible yet
(those routes answer 404), so this answer is exact, not a stub that hides limits.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body
from pydantic import Field
from starlette.responses import Response

from headrace.api.responses import JSON
from headrace.api.schemas import Body as RequestBody

router = APIRouter(prefix="/v2/concurrency_limits")


class SlotRequest(RequestBody):
    names: list[str] = Field(min_length=1)
    slots: int = Field(ge=1)
    mode: str = "concurrency"
    lease_duration: float | None = Field(default=None, gt=0)
    holder: dict[str, Any] | None = None


@router.post("/increment-with-lease")
async def increment_with_lease(body: SlotRequest) -> Response:
    return JSON({"lease_id": str(uuid.uuid4()), "limits": []})


@router.post("/increment")
async def increment(body: SlotRequest) -> Response:
    return JSON([])


@router.post("/decrement")
async def decrement(body: dict[str, Any] = Body(...)) -> Response:
    return JSON([])


@router.post("/leases/{lease_id}/renew", status_code=204)
async def renew_lease(lease_id: uuid.UUID, body: dict[str, Any] = Body(...)) -> Response:
    # A lease on no limits holds no slots; renewing it is trivially fine.
    return Response(status_code=204)


@router.post("/decrement-with-lease", status_code=204)
async def decrement_with_lease(body: dict[str, Any] = Body(...)) -> Response:
    return Response(status_code=204)
