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
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from headrace.api import deps, sockets
from headrace.api.responses import dumps
from headrace.task_queue import Subscription

logger = logging.getLogger(__name__)
router = APIRouter()

PROTOCOL_VIOLATION = 4001
# 1011 "internal error": the client reconnects after half a second.
INTERNAL_ERROR = 1011
MAX_KEYS = 1000
MAX_KEY_LENGTH = 255


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
    try:
        await _deliver(websocket, subscription)
    except ProtocolViolation as exc:
        await _close(websocket, PROTOCOL_VIOLATION, str(exc))
    except (WebSocketDisconnect, OSError):
        pass  # the peer went away while a run was being sent
    except Exception:
        logger.exception("task-run subscription of %r failed", client_id)
        await _close(websocket, INTERNAL_ERROR, "server error; reconnect")
    finally:
        await subscription.close()
        logger.info("task worker %r unsubscribed", client_id)


async def _deliver(websocket: WebSocket, subscription: Subscription) -> None:
    """Push runs one at a time until the peer leaves or breaks the protocol."""
    incoming = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            claiming = asyncio.ensure_future(subscription.next_run())
            await asyncio.wait({claiming, incoming}, return_when=asyncio.FIRST_COMPLETED)
            if not claiming.done():
                claiming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await claiming
                # The client says nothing until it has been sent a run.
                await _leave(websocket, _kind(incoming.result(), ack_expected=False))
                return
            await websocket.send_text(dumps(claiming.result()).decode())
            kind = _kind(await incoming, ack_expected=True)
            if kind != "ack":
                await _leave(websocket, kind)
                return
            await subscription.acked()
            incoming = asyncio.ensure_future(websocket.receive())
    finally:
        incoming.cancel()


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
