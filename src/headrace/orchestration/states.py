"""Helpers for states in wire form (plain dicts), shared by the rules.

A state here is the dict the client sends or reads: ``type`` (upper case),
``name``, ``message``, ``data``, ``state_details`` and, once stored, ``id`` and
``timestamp``. The top-level ``timestamp`` is an aware ``datetime``; datetimes
inside ``state_details`` stay ISO-8601 strings so the dict can be stored as JSON
as-is. Readers accept either form, because stored and client-sent values differ.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from headrace.types import TERMINAL_STATES, StateType, WireDict

# Every key the reference server's StateDetails model has, with its default. A
# stored state carries all of them so clients always read the same shape.
STATE_DETAIL_DEFAULTS: WireDict = {
    "flow_run_id": None,
    "task_run_id": None,
    "child_flow_run_id": None,
    "scheduled_time": None,
    "cache_key": None,
    "cache_expiration": None,
    "deferred": False,
    "untrackable_result": False,
    "pause_timeout": None,
    "pause_reschedule": False,
    "pause_key": None,
    "run_input_keyset": None,
    "refresh_cache": None,
    "retriable": None,
    "transition_id": None,
    "task_parameters_id": None,
    "traceparent": None,
    "deployment_concurrency_lease_id": None,
}

_STATE_KEYS = ("type", "name", "message", "data", "state_details")


def default_name(state_type: StateType) -> str:
    """The name a state gets when none is given, e.g. ``"Running"``.

    Args:
        state_type: The state's type.

    Returns:
        Each underscore-separated word of the type, capitalised.
    """
    return " ".join(word.capitalize() for word in state_type.value.split("_"))


def parse_time(value: Any) -> datetime | None:
    """Read a datetime that may be a ``datetime`` or an ISO-8601 string.

    Args:
        value: ``None``, an aware or naive ``datetime``, or a string with a ``T``
            or space separator and an optional ``Z``/offset.

    Returns:
        An aware datetime (naive values are taken as UTC), or ``None``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def wire_time(moment: datetime) -> str:
    """Format a datetime the way the reference server does (``...123456Z``).

    Args:
        moment: An aware datetime.

    Returns:
        The UTC ISO-8601 text with microseconds and a ``Z`` suffix.
    """
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def state_type(state: WireDict | None) -> StateType | None:
    """The type of a state, or ``None`` when there is no state."""
    return None if state is None else StateType(state["type"])


def details(state: WireDict | None) -> WireDict:
    """The ``state_details`` of a state, ``{}`` when absent."""
    if state is None:
        return {}
    return state.get("state_details") or {}


def detail_time(state: WireDict | None, key: str) -> datetime | None:
    """A datetime held in ``state_details`` (e.g. ``scheduled_time``), parsed."""
    return parse_time(details(state).get(key))


def is_final(state_type_: StateType | None) -> bool:
    """Whether a state type is terminal (COMPLETED, FAILED, CANCELLED, CRASHED)."""
    return state_type_ in TERMINAL_STATES


def has_persisted_result(data: Any) -> bool:
    """Whether state data looks like a stored result reference.

    The client marks results it did not store with ``{"type": "unpersisted"}``;
    any other dict is a reference to a result that would be lost if overwritten.
    """
    return isinstance(data, dict) and data.get("type") != "unpersisted"


def complete_state(proposed: WireDict, now: datetime) -> WireDict:
    """Turn a client's StateCreate into the state that would be stored.

    Fills the name from the type, every missing ``state_details`` key with its
    default, a SCHEDULED state's missing ``scheduled_time`` with ``now``, and sets
    ``timestamp`` to ``now``. Any client ``id``/``timestamp`` is dropped: the
    server stamps states itself.

    Args:
        proposed: The StateCreate wire dict.
        now: The server's clock.

    Returns:
        A new dict; ``proposed`` is not modified.

    Raises:
        ValueError: If ``type`` is not a state type.
    """
    type_ = StateType(proposed["type"])
    state = {key: proposed.get(key) for key in _STATE_KEYS}
    state["type"] = type_.value
    if state["name"] is None:
        state["name"] = default_name(type_)
    state_details = {**STATE_DETAIL_DEFAULTS, **(proposed.get("state_details") or {})}
    if type_ is StateType.SCHEDULED and not state_details["scheduled_time"]:
        state_details["scheduled_time"] = wire_time(now)
    state["state_details"] = state_details
    state["timestamp"] = now
    return state


def new_state(
    type_: StateType,
    now: datetime,
    *,
    name: str | None = None,
    message: str | None = None,
    data: Any = None,
    **state_details: Any,
) -> WireDict:
    """Build a server-made state (AwaitingRetry, Cancelled, ...).

    Args:
        type_: The state type.
        now: The server's clock; becomes the timestamp.
        name: The state name; defaults from the type.
        message: The state message.
        data: The state data (a result reference), stored verbatim.
        **state_details: ``state_details`` keys to set; the rest get defaults.

    Returns:
        A complete state dict without ``id``.
    """
    proposed = {
        "type": type_.value,
        "name": name,
        "message": message,
        "data": data,
        "state_details": state_details,
    }
    return complete_state(proposed, now)
