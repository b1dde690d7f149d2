"""``/task_runs/subscriptions/scheduled``: background task runs pushed to task workers.

The protocol of the 3.9.1 client (``prefect/client/subscriptions.py``): auth
exchange, then ``{"type": "subscribe", "keys": [...], "client_id": ...}``; the
server pushes one TaskRun (plain JSON, no envelope) at a time and waits for
``{"type": "ack"}`` before claiming the next. ``{"type": "quit"}`` ends the
subscription with a normal close. Protocol violations close with 4001 and a
reason. The server never closes with 1000 on its own: the client treats that
as the end of the worker, while any other close makes it reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from headrace.api import deps, sockets
from headrace.api.responses import dumps
from headrace.events.durable_ws import ack_tracker
from headrace.task_queue import Subscription

logger = logging.getLogger(__name__)
router = APIRouter()

PROTOCOL_VIOLATION = 4001
# 1011 "internal error": the client reconnects after half a second.
INTERNAL_ERROR = 1011
MAX_KEYS = 1000
MAX_KEY_LENGTH = 255


class PeerSilent(Exception):
    """The peer stopped pinging: its host is gone even if the connection looks open."""


class ProtocolViolation(Exception):
    """The peer broke the subscription protocol; the message is the close reason."""


def _message(raw: Mapping[str, Any]) -> Any:
    text = raw.get("text")
    data = text if text is not None else raw.get("bytes") or b""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def parse_subscribe(data: Any) -> tuple[list[str], str]:
    """The keys and client id of a subscribe message.

    Raises:
        ProtocolViolation: naming what is missing or wrong.
    """
    if not isinstance(data, dict) or data.get("type") != "subscribe":
        raise ProtocolViolation("Protocol violation: expected 'subscribe' message")
    keys = data.get("keys")
    if not keys:
        raise ProtocolViolation("Protocol violation: expected 'keys' in subscribe message")
    if (
        not isinstance(keys, list)
        or len(keys) > MAX_KEYS
        or not all(isinstance(k, str) and 0 < len(k) <= MAX_KEY_LENGTH for k in keys)
    ):
        raise ProtocolViolation(
            f"Protocol violation: 'keys' must be a list of at most {MAX_KEYS} task keys"
        )
    client_id = data.get("client_id")
    if not client_id:
        raise ProtocolViolation("Protocol violation: expected 'client_id' in subscribe message")
    if not isinstance(client_id, str) or len(client_id) > MAX_KEY_LENGTH:
        raise ProtocolViolation(
            f"Protocol violation: 'client_id' must be a string of at most {MAX_KEY_LENGTH} characters"
        )
    return keys, client_id


@router.websocket("/task_runs/subscriptions/scheduled")
async def scheduled_task_runs(websocket: WebSocket) -> None:
    server = deps.ws_server(websocket)
    if not await sockets.handshake(websocket):
        return
    first = await websocket.receive()
    if first["type"] == "websocket.disconnect":
        return
    try:
        keys, client_id = parse_subscribe(_message(first))
    except ProtocolViolation as exc:
        await websocket.close(code=PROTOCOL_VIOLATION, reason=_reason(str(exc)))
        return
    logger.info("task worker %r subscribed to %d task key(s)", client_id, len(keys))
    subscription = server.task_queue.subscribe(keys, client_id)
    silence = server.settings.task_worker_silence_seconds
    try:
        await _deliver(websocket, subscription, silence)
    except ProtocolViolation as exc:
        await _close(websocket, PROTOCOL_VIOLATION, str(exc))
    except PeerSilent:
        logger.warning("task worker %r stopped pinging; closing its subscription", client_id)
        await _close(websocket, INTERNAL_ERROR, f"no ping for {silence:g} s")
    except (WebSocketDisconnect, OSError):
        pass  # the peer went away while a run was being sent
    except Exception:
        logger.exception("task-run subscription of %r failed", client_id)
        await _close(websocket, INTERNAL_ERROR, "server error; reconnect")
    finally:
        await subscription.close()
        logger.info("task worker %r unsubscribed", client_id)


async def _until_silent(websocket: WebSocket, seconds: float) -> None:
    """Return once a peer that used to ping has not pinged for ``seconds``.

    A task worker whose host vanished leaves a half-open connection that TCP may
    not notice for hours; meanwhile its runs would stay claimed. Peers that never
    ping are not judged.
    """
    tracker = ack_tracker(websocket.scope)
    while True:
        last = None if tracker is None else tracker.last_ping
        if last is None:
            await asyncio.sleep(seconds)
            continue
        left = last + seconds - time.monotonic()
        if left <= 0:
            return
        await asyncio.sleep(left)


async def _deliver(websocket: WebSocket, subscription: Subscription, silence: float) -> None:
    """Push runs one at a time until the peer leaves, falls silent or breaks the protocol."""
    incoming = asyncio.ensure_future(websocket.receive())
    silent = asyncio.ensure_future(_until_silent(websocket, silence))
    try:
        while True:
            claiming = asyncio.ensure_future(subscription.next_run())
            await asyncio.wait({claiming, incoming, silent}, return_when=asyncio.FIRST_COMPLETED)
            if silent.done():
                claiming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await claiming
                raise PeerSilent
            if not claiming.done():
                claiming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await claiming
                # The client says nothing until it has been sent a run.
                await _leave(websocket, _kind(incoming.result(), ack_expected=False))
                return
            await websocket.send_text(dumps(claiming.result()).decode())
            await asyncio.wait({incoming, silent}, return_when=asyncio.FIRST_COMPLETED)
            if not incoming.done():
                raise PeerSilent
            kind = _kind(incoming.result(), ack_expected=True)
            if kind != "ack":
                await _leave(websocket, kind)
                return
            await subscription.acked()
            incoming = asyncio.ensure_future(websocket.receive())
    finally:
        incoming.cancel()
        silent.cancel()


def _kind(message: Mapping[str, Any], ack_expected: bool) -> str:
    """``"ack"``, ``"quit"`` or ``"disconnect"``; anything else breaks the protocol."""
    if message["type"] == "websocket.disconnect":
        return "disconnect"
    data = _message(message)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "quit" or (kind == "ack" and ack_expected):
        return str(kind)
    if ack_expected:
        raise ProtocolViolation("Protocol violation: expected 'ack' message")
    raise ProtocolViolation("Protocol violation: unexpected message before a task run was sent")


async def _leave(websocket: WebSocket, kind: str) -> None:
    """The client left (``quit``: on purpose, answered with a normal close)."""
    if kind == "quit":
        await _close(websocket, 1000, "")


def _reason(text: str) -> str:
    """Close reasons must fit in 123 bytes."""
    return text.encode()[:120].decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=_reason(reason))
