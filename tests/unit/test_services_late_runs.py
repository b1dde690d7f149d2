"""The late-runs service's decisions, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from headrace.orchestration import states
from headrace.services.late_runs import LateRuns, is_late, late_state
from headrace.storage.db import Database

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
CUTOFF = NOW - timedelta(seconds=15)


def _row(**overrides: Any) -> dict[str, Any]:
    row = {
        "state_type": "SCHEDULED",
        "state_name": "Scheduled",
        "next_scheduled_start_time": NOW - timedelta(seconds=20),
    }
    return {**row, **overrides}


def _service() -> LateRuns:
    return LateRuns(cast(Database, None), after=timedelta(seconds=15))


def test_scheduled_run_past_the_threshold_is_late() -> None:
    assert is_late(_row(), CUTOFF)
    assert is_late(_row(next_scheduled_start_time=CUTOFF), CUTOFF)


def test_within_the_threshold_is_not_late() -> None:
    assert not is_late(_row(next_scheduled_start_time=NOW - timedelta(seconds=10)), CUTOFF)
    assert not is_late(_row(next_scheduled_start_time=NOW + timedelta(minutes=1)), CUTOFF)


def test_only_runs_still_named_scheduled() -> None:
    assert not is_late(_row(state_name="Late"), CUTOFF)
    assert not is_late(_row(state_name="AwaitingRetry"), CUTOFF)
    assert not is_late(_row(state_type="PENDING", state_name="Pending"), CUTOFF)
    assert not is_late(_row(next_scheduled_start_time=None), CUTOFF)
    assert not is_late(None, CUTOFF)


def test_late_state_keeps_the_scheduled_time() -> None:
    scheduled = NOW - timedelta(seconds=20)
    state = late_state(scheduled)
    assert (state["type"], state["name"]) == ("SCHEDULED", "Late")
    assert states.detail_time(state, "scheduled_time") == scheduled


def test_next_due_is_earliest_start_plus_threshold() -> None:
    service = _service()
    assert service.due_at(NOW + timedelta(minutes=1)) == NOW + timedelta(minutes=1, seconds=15)
    assert service.due_at(None) is None


def test_notice_wakes_only_for_an_earlier_scheduled_run() -> None:
    service = _service()
    service.next_due = NOW + timedelta(minutes=1)

    def scheduled(at: datetime, name: str = "Scheduled") -> dict[str, Any]:
        return {
            "type": "SCHEDULED",
            "name": name,
            "state_details": {"scheduled_time": states.wire_time(at)},
        }

    service.notice(scheduled(NOW + timedelta(minutes=5)))
    service.notice(scheduled(NOW, name="Late"))
    service.notice({"type": "RUNNING", "name": "Running", "state_details": {}})
    assert not service._wake.is_set()

    service.notice(scheduled(NOW + timedelta(seconds=10)))  # due at +25 s, before +60 s
    assert service._wake.is_set()


def test_unknown_change_wakes() -> None:
    service = _service()
    service.next_due = NOW + timedelta(minutes=1)
    service.notice(None)
    assert service._wake.is_set()
