"""Slot arithmetic of global concurrency limits: occupancy, decay, grants and waits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from headrace.orchestration import slots
from headrace.orchestration.slots import LimitView

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


def limit(
    n: int = 2,
    *,
    leased: int = 0,
    unleased: float = 0.0,
    decay: float = 0.0,
    ago: float = 0.0,
    active: bool = True,
    name: str = "lim",
) -> LimitView:
    return LimitView(
        id=f"id-{name}",
        name=name,
        limit=n,
        active=active,
        decay=decay,
        leased=leased,
        unleased=unleased,
        unleased_at=NOW - timedelta(seconds=ago),
    )


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (limit(leased=2), 2.0),
        (limit(unleased=3.0), 3.0),  # no decay: stays until /decrement
        (limit(unleased=3.0, decay=1.0, ago=1.5), 1.5),
        (limit(unleased=3.0, decay=1.0, ago=10), 0.0),  # never below zero
        (limit(leased=1, unleased=2.0, decay=0.5, ago=2), 2.0),  # leased slots never decay
    ],
)
def test_occupancy_is_leases_plus_decayed_unleased(view: LimitView, expected: float) -> None:
    assert slots.occupancy(view, NOW) == pytest.approx(expected)


def test_active_slots_round_partly_decayed_slots_up() -> None:
    assert slots.active_slots(limit(leased=1, unleased=1.2), NOW) == 3
    assert slots.active_slots(limit(unleased=2.0, decay=1.0, ago=0.5), NOW) == 2
    assert slots.active_slots(limit(unleased=2.0, decay=1.0, ago=1.0), NOW) == 1
    assert slots.active_slots(limit(unleased=2.0, decay=1.0, ago=5.0), NOW) == 0


def test_a_request_fits_while_the_sum_stays_within_the_limit() -> None:
    assert slots.judge([limit(2, leased=1)], 1, NOW) == slots.Verdict(True)
    assert not slots.judge([limit(2, leased=2)], 1, NOW).fits
    assert not slots.judge([limit(3, leased=2)], 2, NOW).fits


def test_all_or_nothing_over_several_limits() -> None:
    free, full = limit(5, name="a"), limit(1, leased=1, name="b")
    assert not slots.judge([free, full], 1, NOW).fits
    assert slots.judge([free, replace(full, leased=0)], 1, NOW).fits


def test_inactive_limits_are_ignored() -> None:
    assert slots.judge([limit(1, leased=1, active=False)], 1, NOW).fits


def test_blocked_by_leases_only_a_release_can_help() -> None:
    assert slots.judge([limit(1, leased=1)], 1, NOW) == slots.Verdict(False, None)
    assert slots.room_at(limit(1, leased=1, unleased=1.0, decay=1.0), 1, NOW) is None


def test_decay_gives_the_exact_moment_of_room() -> None:
    # 5 slots used at 1/s decay: a request for 2 fits once 2 have decayed.
    view = limit(5, unleased=5.0, decay=1.0)
    assert slots.room_at(view, 2, NOW) == at(2)
    assert slots.judge([view], 2, NOW) == slots.Verdict(False, at(2))
    assert slots.judge([view], 2, at(2)).fits
    assert not slots.judge([view], 2, at(1.9)).fits


def test_the_latest_of_several_decays_decides() -> None:
    fast = limit(1, unleased=1.0, decay=2.0, name="fast")
    slow = limit(1, unleased=1.0, decay=0.5, name="slow")
    assert slots.judge([fast, slow], 1, NOW) == slots.Verdict(False, at(2))


def test_rate_limit_burst_then_one_per_decay_interval() -> None:
    view = limit(3, decay=1.0)
    granted: list[float] = []
    moment = 0.0
    while len(granted) < 6:
        verdict = slots.judge([view], 1, at(moment))
        if verdict.fits:
            unleased = slots.add_unleased(view, 1, at(moment))
            view = replace(view, unleased=unleased, unleased_at=at(moment))
            granted.append(moment)
        else:
            assert verdict.retry_at is not None
            moment = (verdict.retry_at - NOW).total_seconds()
    assert granted == pytest.approx([0, 0, 0, 1, 2, 3])


def test_add_unleased_decays_first_and_never_goes_negative() -> None:
    view = limit(unleased=4.0, decay=1.0, ago=1.0)
    assert slots.add_unleased(view, 1, NOW) == pytest.approx(4.0)
    assert slots.add_unleased(view, -10, NOW) == 0.0


def test_setting_active_slots_keeps_the_leases() -> None:
    view = limit(5, leased=2, unleased=1.0)
    assert slots.unleased_for_total(view, 4, NOW) == 2.0
    assert slots.unleased_for_total(view, 0, NOW) == 0.0


@pytest.mark.parametrize(
    ("views", "count", "mode", "message"),
    [
        ([limit(2)], 3, "concurrency", "Slots requested is greater than the limit"),
        ([limit(0)], 1, "concurrency", "Slots requested is greater than the limit"),
        ([limit(2, name="flat")], 1, "rate_limit", "do not have a decay configured: 'flat'"),
    ],
)
def test_requests_that_can_never_be_granted(
    views: list[LimitView], count: int, mode: slots.Mode, message: str
) -> None:
    with pytest.raises(slots.SlotsError, match=message):
        slots.check_request(views, count, mode)


def test_inactive_limits_are_not_checked() -> None:
    slots.check_request([limit(1, active=False)], 5, "rate_limit")
    slots.check_request([limit(2, decay=1.0)], 2, "rate_limit")
