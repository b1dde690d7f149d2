"""/events over HTTP: filter with paging, count-by, and the HTTP emit route."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from headrace.api import deps
from headrace.api.responses import JSON
from headrace.api.schemas import EventFilterBody
from headrace.errors import InvalidInput
from headrace.events import filters
from headrace.events.model import InvalidEvent, normalize
from headrace.storage import events as event_store

router = APIRouter(prefix="/events")


def parse_filter(raw: dict[str, Any] | None) -> filters.EventFilter:
    try:
        return filters.EventFilter.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidInput(f"invalid event filter: {exc.errors(include_url=False)}") from None


async def _page(
    request: Request, flt: filters.EventFilter, limit: int, offset: int
) -> dict[str, Any]:
    prefilter = filters.sql_prefilter(flt)
    ascending = flt.order == filters.EventOrder.ASC
    async with deps.server(request).db.read() as conn:
        rows, total = await event_store.query_events(
            conn, dict(prefilter), limit, offset, ascending
        )
    events = [e for e in rows if flt.matcher(e)]
    next_page = None
    if offset + limit < total and limit > 0:
        token = {"filter": flt.model_dump(mode="json"), "limit": limit, "offset": offset + limit}
        encoded = base64.urlsafe_b64encode(orjson.dumps(token)).decode()
        next_page = str(
            request.url_for("read_next_events_page").include_query_params(**{"page-token": encoded})
        )
    return {"events": events, "total": total, "next_page": next_page}


@router.post("/filter")
async def read_events(body: EventFilterBody, request: Request) -> Response:
    return JSON(await _page(request, parse_filter(body.filter), body.limit, 0))


@router.get("/filter/next", name="read_next_events_page")
async def read_next_events_page(
    request: Request, page_token: str = Query(alias="page-token")
) -> Response:
    try:
        token = orjson.loads(base64.urlsafe_b64decode(page_token.encode()))
        flt = filters.EventFilter.model_validate(token["filter"])
        limit, offset = int(token["limit"]), int(token["offset"])
    except (ValueError, KeyError, TypeError, ValidationError):
        return JSON({"detail": "Invalid page token"}, status_code=403)
    return JSON(await _page(request, flt, limit, offset))


TIME_UNITS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


@router.post("/count-by/{countable}")
async def count_events(
    countable: str,
    request: Request,
    filter: dict[str, Any] | None = Body(None, embed=True),
    time_unit: str = Body("day", embed=True),
    time_interval: float = Body(1.0, embed=True, ge=0.01),
) -> Response:
    if countable not in ("event", "resource", "day", "time"):
        raise InvalidInput("countable must be one of 'day', 'time', 'event', 'resource'")
    if time_unit not in TIME_UNITS:
        raise InvalidInput(f"time_unit must be one of {', '.join(TIME_UNITS)}")
    flt = parse_filter(filter)
    prefilter = dict(filters.sql_prefilter(flt))
    async with deps.server(request).db.read() as conn:
        if countable in ("event", "resource"):
            counts = await event_store.count_by(conn, prefilter, countable)
            return JSON([{**c, "label": c["value"]} for c in counts])
        unit = "day" if countable == "day" else time_unit
        interval = 1.0 if countable == "day" else time_interval
        per_unit = await event_store.count_by_time(conn, prefilter, unit)
    return JSON(_buckets(per_unit, flt.occurred.since, TIME_UNITS[unit] * interval))


def _buckets(
    per_unit: list[tuple[datetime, int]], since: datetime, width: timedelta
) -> list[dict[str, Any]]:
    """Merge per-unit counts into buckets of ``width`` aligned on ``since``."""
    merged: dict[int, int] = {}
    for start, count in per_unit:
        index = max(0, int((start - since) / width))
        merged[index] = merged.get(index, 0) + count
    out = []
    for index in sorted(merged):
        start = since + width * index
        label = start.isoformat()
        out.append(
            {
                "value": label,
                "label": label,
                "count": merged[index],
                "start_time": start,
                "end_time": start + width,
            }
        )
    return out


@router.post("", status_code=204)
async def create_events(request: Request, body: list[dict[str, Any]] = Body(...)) -> Response:
    """Emit events over HTTP (for non-Python emitters); the client itself uses /events/in."""
    server = deps.server(request)
    received = deps.now()
    try:
        events = [normalize(raw, received) for raw in body]
    except InvalidEvent as exc:
        raise InvalidInput(str(exc)) from None
    for event in events:
        await server.pipeline.put(event)
    return Response(status_code=204)
