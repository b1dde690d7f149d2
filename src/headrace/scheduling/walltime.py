"""Wall-clock times in an IANA zone, and the UTC instants they name.

Calendar rules (cron, RRULE, whole-day intervals) are evaluated on naive wall-clock
times; this module turns those into UTC instants with one policy, the one RFC 5545
prescribes and the reference server applies: a wall time that happens twice (clocks
set back) means its first occurrence, and a wall time that does not exist (clocks
set forward) is pushed forward by the length of the gap. Two wall times that land on
one instant yield it once.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

_DAY = timedelta(days=1)


@functools.cache
def timezone_names() -> frozenset[str]:
    """Every IANA zone name this machine's tz database knows."""
    return frozenset(available_timezones())


@functools.lru_cache(maxsize=1024)
def zone(name: str | None) -> ZoneInfo:
    """The zone called `name`, UTC when `name` is empty or ``None``."""
    return ZoneInfo(name or "UTC")


def _offsets_near(moment: datetime, tz: ZoneInfo) -> list[timedelta]:
    # A day either side covers any wall time whose instant is near `moment`, given
    # at most one transition a day (true of every zone since 2011).
    offsets = []
    for shift in (-_DAY, timedelta(0), _DAY):
        try:
            offset = (moment + shift).astimezone(tz).utcoffset()
        except OverflowError:
            continue
        offsets.append(offset or timedelta(0))
    return offsets


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def wall_floor(moment: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time at or before every wall time whose instant is after `moment`.

    Args:
        moment: An aware datetime (the cursor).
        tz: The zone the wall times are read in.

    Returns:
        The cursor's wall time, moved back by any offset change nearby and truncated
        to the second, so a walk that starts here misses nothing after the cursor.
    """
    return (_utc_naive(moment) + min(_offsets_near(moment, tz))).replace(microsecond=0)


def wall_ceiling(moment: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time at or after every wall time whose instant is not after `moment`."""
    return _utc_naive(moment) + max(_offsets_near(moment, tz))


def to_instants(walls: Iterable[datetime], tz: ZoneInfo) -> Iterator[datetime]:
    """Turn ascending naive wall times into strictly ascending aware UTC instants.

    Args:
        walls: Naive wall times in ascending order.
        tz: The zone they are read in.

    Yields:
        Each distinct instant once, in order. With the first-occurrence reading,
        instants only go backwards for a wall time inside a gap (it moves forward by
        the gap, past real wall times that follow it), so such an instant is held
        back until a later real wall time reaches it.
    """
    held: list[datetime] = []
    last: datetime | None = None
    for wall in walls:
        moment = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if moment.astimezone(tz).replace(tzinfo=None) != wall:
            heapq.heappush(held, moment)
            continue
        while held and held[0] <= moment:
            early = heapq.heappop(held)
            if last is None or early > last:
                last = early
                yield early
        if last is None or moment > last:
            last = moment
            yield moment
    while held:
        early = heapq.heappop(held)
        if last is None or early > last:
            last = early
            yield early


def take(
    moments: Iterable[datetime], after: datetime, until: datetime | None, limit: int
) -> list[datetime]:
    """The first `limit` ascending instants after `after` (exclusive), up to `until`
    (inclusive)."""
    taken: list[datetime] = []
    if limit <= 0:
        return taken
    for moment in moments:
        if moment <= after:
            continue
        if until is not None and moment > until:
            break
        taken.append(moment)
        if len(taken) >= limit:
            break
    return taken
