"""The pause-expiration service's decisions, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from headrace.orchestration import states
from headrace.services.pause_expirations import (
    MESSAGE,
    PauseExpirations,
    failed_state,
    is_expired,
    pause_deadline,
    split_expired,
)
from headrace.storage.db import Database

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def _paused(timeout: datetime | None, name: str = "Paused") -> dict[str, Any]:
    details = {} if timeout is None else {"pause_timeout": states.wire_time(timeout)}
    return {"type": "PAUSED", "name": name, "state_details": details}


def test_deadline_of_a_paused_state() -> None:
    assert pause_deadline(_paused(NOW)) == NOW
    assert pause_deadline(_paused(None)) is None
    assert pause_deadline({"type": "RUNNING", "state_details": {"pause_timeout": "x"}}) is None
    assert pause_deadline(None) is None


def test_expired_once_the_timeout_has_passed() -> None:
    assert is_expired(_paused(NOW - timedelta(seconds=1)), NOW)
    assert is_expired(_paused(NOW), NOW)
    assert not is_expired(_paused(NOW + timedelta(seconds=1)), NOW)
    assert not is_expired(_paused(None), NOW)
    assert is_expired(_paused(NOW - timedelta(days=1), name="Suspended"), NOW)


def test_split_finds_expired_and_the_next_deadline() -> None:
    rows = [
        {"id": "a", "state": _paused(NOW - timedelta(seconds=5))},
        {"id": "b", "state": _paused(NOW + timedelta(seconds=30))},
        {"id": "c", "state": _paused(None)},
        {"id": "d", "state": _paused(NOW + timedelta(seconds=10))},
        {"id": "e", "state": _paused(NOW - timedelta(hours=1))},
    ]
    assert split_expired(rows, NOW) == (["a", "e"], NOW + timedelta(seconds=10))
    assert split_expired([], NOW) == ([], None)


def test_failed_state_matches_the_reference() -> None:
    assert failed_state() == {"type": "FAILED", "name": "Failed", "message": MESSAGE}
    assert MESSAGE == "The flow was paused and never resumed."


def test_notice_wakes_for_an_earlier_pause_only() -> None:
    service = PauseExpirations(cast(Database, None))
    service.next_due = NOW + timedelta(minutes=10)

    service.notice(_paused(NOW + timedelta(hours=1)))
    service.notice(_paused(None))
    service.notice({"type": "COMPLETED", "name": "Completed", "state_details": {}})
    assert not service._wake.is_set()

    service.notice(_paused(NOW + timedelta(minutes=1)))
    assert service._wake.is_set()
