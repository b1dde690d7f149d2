"""Celery event message bodies -> validated, bounded ``CeleryEvent`` values (pure).

A body is one event (a dict) or a list of them (workers batch task events). Bad
input never raises: an item that is not an event is counted as malformed, an
event of a group other than ``task``/``worker`` as unknown, and both are skipped
without affecting the items around them. Long texts are cut, not rejected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Celery sends these as ``saferepr`` strings; anything else is shown as its repr.
TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback", "eta", "expires")
# Names, hostnames, ids and routing fields are stored in indexed 255-character columns.
NAME_FIELDS = ("name", "root_id", "parent_id", "exchange", "routing_key", "queue")
NAME_LIMIT = 255
_TEXTS, _NAMES = frozenset(TEXT_FIELDS), frozenset(NAME_FIELDS)
# Body keys that become ``CeleryEvent`` attributes, so not ``fields`` too.
_ATTRIBUTES = frozenset(("type", "hostname", "timestamp", "clock", "uuid"))
SUBJECT_LIMIT = 48  # a custom event's subject becomes a state (a 64-character column)
_INT64 = 2**63 - 1
TRUNCATED = "…[truncated by headrace: {size} bytes in all]"
GROUPS = ("task", "worker")


@dataclass(frozen=True, slots=True)
class CeleryEvent:
    """One Celery event, checked and bounded.

    Attributes:
        group: ``task`` or ``worker``.
        subject: what happened (``succeeded``, ``heartbeat``, ...).
        hostname: the sender (a worker, or the client for ``task-sent``).
        timestamp: when it happened, by the sender's clock (epoch seconds).
        local_received: when the monitor received it, by its own clock.
        clock: the sender's logical clock.
        uuid: the task id ("" for worker events).
        fields: the rest of the body (not the keys above), texts already bounded.
    """

    group: str
    subject: str
    hostname: str
    timestamp: float
    local_received: float
    clock: int = 0
    uuid: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return f"{self.group}-{self.subject}"


@dataclass
class Parsed:
    """What one message body held."""

    events: list[CeleryEvent] = field(default_factory=list)
    malformed: int = 0
    unknown: int = 0


def clean_text(value: str) -> str:
    """Postgres cannot store NUL in text; both backends get the same visible stand-in."""
    return value.replace("\x00", "\\x00") if "\x00" in value else value


def truncate(text: str, limit_bytes: int) -> str:
    """``text`` if it fits in ``limit_bytes`` (UTF-8), else its head and a marker.

    The marker gives the original size, so a reader knows the value was cut and
    by how much.
    """
    if len(text) * 4 <= limit_bytes:  # the common case, without encoding
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit_bytes:
        return text
    head = encoded[:limit_bytes].decode("utf-8", "ignore")
    return head + TRUNCATED.format(size=len(encoded))


def _text(value: Any, limit_bytes: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else repr(value)
    return clean_text(truncate(text, limit_bytes))


def _name(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return clean_text(text[:NAME_LIMIT])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, int) and -_INT64 <= value <= _INT64:
        return value
    return None


def parse_event(item: Any, local_received: float, max_field_bytes: int) -> CeleryEvent | str:
    """One event dict -> a ``CeleryEvent``, or ``"malformed"`` / ``"unknown"``."""
    if not isinstance(item, Mapping):
        return "malformed"
    kind = item.get("type")
    if not isinstance(kind, str) or "-" not in kind:
        return "malformed"
    group, _, subject = kind.partition("-")
    if group not in GROUPS:
        return "unknown"
    if not subject or len(subject) > SUBJECT_LIMIT:
        return "malformed"
    hostname = _name(item.get("hostname")) or ""
    uuid = ""
    if group == "task":
        uuid = _name(item.get("uuid")) or ""
        if not uuid:
            return "malformed"
    elif not hostname:
        return "malformed"
    fields: dict[str, Any] = {}
    # The same rules as ``_text`` / ``_name``, arranged for the common case (a
    # short string without NUL): this loop runs for every field of every event.
    short = max_field_bytes // 4
    for key, value in item.items():
        if key in _ATTRIBUTES:
            continue  # kept once, as the event's own attributes (queued events add up)
        if isinstance(value, str):
            if key in _NAMES:
                fields[key] = _name(value)
            elif len(value) <= short and "\x00" not in value:
                fields[key] = value
            else:
                fields[key] = clean_text(truncate(value, max_field_bytes))
        elif value is None or (key not in _TEXTS and key not in _NAMES):
            fields[key] = value
        elif key in _TEXTS:
            fields[key] = _text(value, max_field_bytes)
        else:
            fields[key] = _name(value)
    timestamp = _number(item.get("timestamp"))
    return CeleryEvent(
        group=group,
        subject=clean_text(subject),
        hostname=hostname,
        timestamp=local_received if timestamp is None else timestamp,
        local_received=local_received,
        clock=_integer(item.get("clock")) or 0,
        uuid=uuid,
        fields=fields,
    )


def parse_body(body: Any, local_received: float, max_field_bytes: int) -> Parsed:
    """A decoded message body (one event or a list of them) -> its events and rejects.

    Args:
        body: the decoded message body.
        local_received: the monitor's clock when the message arrived.
        max_field_bytes: longest stored text field (UTF-8 bytes) before the marker.
    """
    parsed = Parsed()
    for item in body if isinstance(body, list) else [body]:
        result = parse_event(item, local_received, max_field_bytes)
        if isinstance(result, CeleryEvent):
            parsed.events.append(result)
        elif result == "unknown":
            parsed.unknown += 1
        else:
            parsed.malformed += 1
    return parsed
