"""Initial states of new runs and the wire-state helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from headrace.orchestration import initial_state
from headrace.orchestration.rules import rounded_seconds
from headrace.orchestration.states import complete_state, default_name, parse_time, wire_time
from headrace.types import StateType, WireDict

NOW = datetime(2026, 11, 25, 14, 40, 35, 509104, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("proposed", "type_name", "run_update"),
    [
        pytest.param(None, ("PENDING", "Pending"), {"expected_start_time": NOW}, id="default"),
        pytest.param(
            {"type": "PENDING", "name": "Pending", "state_details": {"traceparent": None}},
            ("PENDING", "Pending"),
            {"expected_start_time": NOW},
            id="pending",
        ),
        pytest.param(
            {"type": "SCHEDULED", "state_details": {"scheduled_time": wire_time(LATER)}},
            ("SCHEDULED", "Scheduled"),
            {"expected_start_time": LATER, "next_scheduled_start_time": LATER},
            id="scheduled",
        ),
        pytest.param(
            {"type": "SCHEDULED"},
            ("SCHEDULED", "Scheduled"),
            {"expected_start_time": NOW, "next_scheduled_start_time": NOW},
            id="scheduled-without-time-is-now",
        ),
        pytest.param(
            {"type": "RUNNING"},
            ("RUNNING", "Running"),
            {"expected_start_time": NOW, "start_time": NOW, "run_count": 1},
            id="running",
        ),
        pytest.param(
            {"type": "COMPLETED", "name": "Cached"},
            ("COMPLETED", "Cached"),
            {"expected_start_time": NOW, "start_time": NOW, "end_time": NOW},
            id="completed",
        ),
    ],
)
def test_initial_state(
    proposed: WireDict | None, type_name: tuple[str, str], run_update: WireDict
) -> None:
    state, update = initial_state(proposed, NOW, flow_run_id="fr-1")
    assert (state["type"], state["name"]) == type_name
    assert state["timestamp"] == NOW
    assert "id" not in state
    assert state["state_details"]["flow_run_id"] == "fr-1"
    assert state["state_details"]["deferred"] is False
    assert update == run_update


def test_initial_state_keeps_client_details() -> None:
    proposed = {"type": "PENDING", "state_details": {"deferred": None, "task_parameters_id": "p"}}
    state, _ = initial_state(proposed, NOW, task_run_id="tr-1")
    assert state["state_details"]["deferred"] is None
    assert state["state_details"]["task_parameters_id"] == "p"
    assert state["state_details"]["task_run_id"] == "tr-1"
    assert state["state_details"]["flow_run_id"] is None


def test_complete_state_drops_client_id_and_timestamp() -> None:
    state = complete_state({"type": "FAILED", "id": "x", "timestamp": "y", "message": "m"}, NOW)
    assert state == {
        "type": "FAILED",
        "name": "Failed",
        "message": "m",
        "data": None,
        "state_details": state["state_details"],
        "timestamp": NOW,
    }


def test_complete_state_rejects_unknown_type() -> None:
    with pytest.raises(ValueError):
        complete_state({"type": "DONE"}, NOW)


@pytest.mark.parametrize(
    ("type_", "name"),
    [
        (StateType.RUNNING, "Running"),
        (StateType.CANCELLING, "Cancelling"),
        (StateType.CRASHED, "Crashed"),
    ],
)
def test_default_name(type_: StateType, name: str) -> None:
    assert default_name(type_) == name


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("2026-11-25T14:40:35.509104Z", NOW),
        ("2026-11-25T14:40:35.509104+00:00", NOW),
        ("2026-11-25 14:40:35.509104+00:00", NOW),
        ("2026-11-25T14:40:35.509104", NOW),
        (NOW, NOW),
        (NOW.replace(tzinfo=None), NOW),
        (NOW.astimezone(timezone(timedelta(hours=2))), NOW),
    ],
)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_wire_time_matches_reference_format() -> None:
    assert wire_time(NOW) == "2026-11-25T14:40:35.509104Z"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(5.0, 5), (0.4, 0), (0.5, 0), (0.6, 1), (1.5, 1), (2.7, 3), (0.984, 1), (-0.3, 0), (-2.0, -2)],
)
def test_rounded_seconds(seconds: float, expected: int) -> None:
    assert rounded_seconds(timedelta(seconds=seconds)) == expected
