"""When a lease keeper claims again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from headrace.services.leases import next_check

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.mark.parametrize(
    ("held", "foreign", "expected"),
    [
        (True, [], 10.0),  # renew a third of the way through
        (False, [], 30.0),  # nothing known: look again after a lease
        (False, [NOW + timedelta(seconds=4)], 4.05),  # just after the holder's lease lapses
        (True, [NOW + timedelta(seconds=25)], 10.0),  # renewal comes first
        (False, [NOW - timedelta(seconds=3)], 0.05),  # already lapsed: at once
    ],
)
def test_next_check(held: bool, foreign: list[datetime], expected: float) -> None:
    assert next_check(NOW, LEASE, held, foreign) == pytest.approx(expected)
