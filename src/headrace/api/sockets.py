"""The event WebSockets: ``/events/in`` (ingest) and ``/events/out`` (live stream)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError

from headrace.api import deps
from headrace.api.responses import dumps
from headrace.events import durable_ws, filters
from headrace.events.model import InvalidEvent, normalize
from headrace.storage import events as event_store

logger = logging.getLogger(__name__)
router = APIRouter()

AUTH_SUCCESS = '{"type":"auth_success"}'
BACKFILL_PAGE = 250


def _reason(text: str) -> str:
    """Close reasons must fit in 123 bytes."""
    encoded = text.encode()[:120]
    return encoded.decode(errors="ignore")


async def handshake(websocket: WebSocket) -> bool:
    """Accept (selecting the ``prefect`` subprotocol) and run the auth exchange.

    Returns False when the socket was closed because the peer broke the protocol.
    """
    offered = websocket.scope.get("subprotocols") or []
    if "prefect" not in offered:
        # Legacy clients: no subprotocol, no in-band handshake (as the reference).
        await websocket.accept()
        return True
    await websocket.accept(subprotocol="prefect")
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return False
    try:
        data = orjson.loads(message.get("text") or message.get("bytes") or b"")
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("type") != "auth":
        await websocket.close(code=1008, reason="Expected 'auth' message")
        return False
    await websocket.send_text(AUTH_SUCCESS)
    return True


class _Throttle:
    """Log a repeated warning at most once per interval."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.suppressed = 0

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        logger.warning(message + " (%d similar suppressed)", *args, self.suppressed)
        self.last, self.suppressed = now, 0


_invalid_events = _Throttle()


@router.websocket("/events/in")
async def events_in(websocket: WebSocket) -> None:
    server = deps.ws_server(websocket)
    tracker = durable_ws.ack_tracker(websocket.scope)
    if tracker is not None:
        tracker.enable()
    if not await handshake(websocket):
        return
    seq = 1 if "prefect" in (websocket.scope.get("subprotocols") or []) else 0
    confirm = tracker.confirm if tracker is not None else None
    if confirm is not None and seq:
        confirm(seq)
    pipeline = server.pipeline
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        seq += 1
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        try:
            if ("\\u0000" in raw) if isinstance(raw, str) else (b"\\u0000" in raw):
                raise InvalidEvent("NUL characters (\\u0000) cannot be stored")
            event = normalize(orjson.loads(raw), deps.now())
        except (orjson.JSONDecodeError, InvalidEvent) as exc:
            _invalid_events.warn("rejected a message on /events/in: %s", exc)
            event = None
        await pipeline.put(event, confirm, seq)


@router.websocket("/events/out")
async def events_out(websocket: WebSocket) -> None:
    server = deps.ws_server(websocket)
    if not await handshake(websocket):
        return
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return
    try:
        data = orjson.loads(message.get("text") or message.get("bytes") or b"")
        if not isinstance(data, dict) or data.get("type") != "filter":
            await websocket.close(code=1002, reason="Expected 'filter' message")
            return
        flt = filters.EventFilter.model_validate(data.get("filter") or {})
    except (orjson.JSONDecodeError, ValidationError) as exc:
        await websocket.close(code=1002, reason=_reason(f"Invalid filter: {exc}"))
        return
    subscription = server.broadcaster.subscribe(flt.matcher)
    try:
        sent: set[str] = set()
        if data.get("backfill", True):
            sent = await _backfill(websocket, flt, server.settings.events_backfill_minutes)
        await _stream(websocket, subscription, sent)
    finally:
        server.broadcaster.unsubscribe(subscription)


async def _backfill(
    websocket: WebSocket, flt: filters.EventFilter, window_minutes: float
) -> set[str]:
    """Send stored matches since the filter's ``since`` (at most the backfill window)."""
    server = deps.ws_server(websocket)
    earliest = deps.now() - timedelta(minutes=window_minutes)
    prefilter: dict[str, Any] = dict(filters.sql_prefilter(flt))
    prefilter["since"] = max(prefilter["since"], earliest)
    sent: set[str] = set()
    offset = 0
    while True:
        async with server.db.read() as conn:
            rows, _total = await event_store.query_events(
                conn, prefilter, BACKFILL_PAGE, offset, ascending=True
            )
        for event in rows:
            if flt.matcher(event):
                await websocket.send_text(dumps({"type": "event", "event": event}).decode())
                sent.add(str(event["id"]))
        if len(rows) < BACKFILL_PAGE:
            return sent
        offset += BACKFILL_PAGE


async def _stream(websocket: WebSocket, subscription: Any, already_sent: set[str]) -> None:
    closed = asyncio.ensure_future(_wait_disconnect(websocket))
    try:
        while True:
            getter = asyncio.ensure_future(subscription.queue.get())
            overflow = asyncio.ensure_future(subscription.overflowed.wait())
            done, _ = await asyncio.wait(
                {getter, overflow, closed}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
            overflow.cancel()
            if closed in done:
                return
            if getter in done:
                event = getter.result()
                if str(event["id"]) in already_sent:
                    continue
                await websocket.send_text(dumps({"type": "event", "event": event}).decode())
                continue
            await websocket.close(code=1013, reason="subscriber fell behind; reconnect to catch up")
            return
    finally:
        closed.cancel()


async def _wait_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
