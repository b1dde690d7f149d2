"""The cancellation-cleanup service's decisions, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from headrace.services.cancellation_cleanup import (
    LOOKBACK,
    OVERLAP,
    PARENT_CANCELLED,
    TIMED_OUT,
    CancellationCleanup,
    is_stuck,
    subflow_proposal,
    timed_out_state,
)
from headrace.storage.db import Database

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
DEPLOYMENT = "0195b3a0-0000-7000-8000-000000000001"


def _service() -> CancellationCleanup:
    return CancellationCleanup(cast(Database, None), cancelling_timeout=timedelta(seconds=300))


@pytest.mark.parametrize("state_type", ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"])
def test_inline_subflow_is_cancelled(state_type: str) -> None:
    proposal = subflow_proposal({"state_type": state_type, "deployment_id": None})
    assert proposal == {"type": "CANCELLED", "name": "Cancelled", "message": PARENT_CANCELLED}


@pytest.mark.parametrize("state_type", ["SCHEDULED", "PENDING", "RUNNING", "PAUSED"])
def test_deployed_subflow_is_asked_to_cancel(state_type: str) -> None:
    proposal = subflow_proposal({"state_type": state_type, "deployment_id": DEPLOYMENT})
    assert proposal == {"type": "CANCELLING", "name": "Cancelling", "message": PARENT_CANCELLED}


def test_deployed_subflow_already_cancelling_is_left_alone() -> None:
    assert subflow_proposal({"state_type": "CANCELLING", "deployment_id": DEPLOYMENT}) is None


@pytest.mark.parametrize("state_type", ["COMPLETED", "FAILED", "CANCELLED", "CRASHED", None])
def test_finished_subflow_is_left_alone(state_type: str | None) -> None:
    assert subflow_proposal({"state_type": state_type, "deployment_id": None}) is None


def test_stuck_after_the_timeout() -> None:
    cutoff = NOW - timedelta(seconds=300)
    row = {"state_type": "CANCELLING", "state_timestamp": cutoff}
    assert is_stuck(row, cutoff)
    assert not is_stuck({**row, "state_timestamp": cutoff + timedelta(seconds=1)}, cutoff)
    assert not is_stuck({**row, "state_type": "CANCELLED"}, cutoff)
    assert not is_stuck(None, cutoff)
    assert timed_out_state()["message"] == TIMED_OUT


def test_next_due_is_oldest_cancelling_plus_timeout() -> None:
    service = _service()
    assert service.due_at(NOW) == NOW + timedelta(seconds=300)
    assert service.due_at(None) is None


def test_parents_window_starts_a_day_back_then_follows_the_cursor() -> None:
    service = _service()
    assert service.parents_window(NOW) == NOW - LOOKBACK
    service.since = NOW
    assert service.parents_window(NOW + timedelta(minutes=5)) == NOW - OVERLAP


def test_notice() -> None:
    service = _service()
    service.next_due = NOW + timedelta(seconds=100)

    service.notice({"type": "RUNNING", "name": "Running"})
    service.notice({"type": "CANCELLING", "name": "Cancelling", "timestamp": NOW})  # +300 s
    assert not service._wake.is_set()

    service.notice({"type": "CANCELLED", "name": "Cancelled", "timestamp": NOW})
    assert service._wake.is_set()

    service._wake.clear()
    service.next_due = None
    service.notice({"type": "CANCELLING", "name": "Cancelling", "timestamp": NOW.isoformat()})
    assert service._wake.is_set()
