"""Validate and normalise one event as the client sends it (``Event.model_dump_json()``)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from headrace.types import WireDict


class InvalidEvent(ValueError):
    """The message is not an event; the text says why."""


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"{field} must be an ISO-8601 datetime string")
    text = value.replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"{field} {value!r} is not an ISO-8601 datetime") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: Any, field: str) -> str:
    # The client always sends canonical lower-case UUIDs; parsing them is the slow path.
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidEvent(f"'{field}' must be a UUID") from None


def _resource(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidEvent(f"{field} must be an object")
    rid = value.get("prefect.resource.id")
    if not isinstance(rid, str) or not rid:
        raise InvalidEvent(f"{field} needs a non-empty 'prefect.resource.id'")
    if all(type(v) is str for v in value.values()):
        return value
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def normalize(raw: Any, received: datetime) -> WireDict:
    """A validated copy of ``raw`` with ``received`` set.

    Raises:
        InvalidEvent: naming the first field that is wrong.
    """
    if not isinstance(raw, dict):
        raise InvalidEvent("an event must be a JSON object")
    name = raw.get("event")
    if not isinstance(name, str) or not name or len(name) > 1024:
        raise InvalidEvent("'event' must be a non-empty string of at most 1024 characters")
    event_id = _uuid(raw.get("id"), "id")
    related = raw.get("related") or []
    if not isinstance(related, list):
        raise InvalidEvent("'related' must be a list")
    payload = raw.get("payload") or {}
    if not isinstance(payload, dict):
        raise InvalidEvent("'payload' must be an object")
    follows = raw.get("follows")
    if follows is not None:
        follows = _uuid(follows, "follows")
    occurred = raw.get("occurred")
    return {
        "id": event_id,
        "occurred": _time(occurred, "occurred") if occurred is not None else received,
        "event": name,
        "resource": _resource(raw.get("resource"), "resource"),
        "related": [_resource(r, f"related[{i}]") for i, r in enumerate(related)],
        "payload": payload,
        "follows": follows,
        "received": received,
    }
