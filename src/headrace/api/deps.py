"""Request-scoped access to the server's parts, and small parsing helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.websockets import WebSocket

from headrace.errors import InvalidInput

if TYPE_CHECKING:
    from headrace.server import Server


def server(request: Request) -> Server:
    return request.app.state.server  # type: ignore[no-any-return]


def ws_server(websocket: WebSocket) -> Server:
    return websocket.app.state.server  # type: ignore[no-any-return]


def now() -> datetime:
    return datetime.now(UTC)


def uuid_path(value: str, what: str = "id") -> str:
    """A path segment that must be a UUID; 422 otherwise (404 would hide the typo)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not a valid UUID") from None
