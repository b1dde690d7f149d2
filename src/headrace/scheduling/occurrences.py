"""When a schedule fires next, computed forward from a cursor.

The cost of a call depends on `limit` and on the schedule's own shape, never on how
long ago the schedule was anchored: an interval jumps to the cursor arithmetically,
cron starts croniter at the cursor, and an RRULE is re-anchored next to the cursor
(see `headrace.scheduling.rrules`). The cursor is exclusive, so calling again with
the last occurrence returned continues the sequence with no gap and no repeat.

Timezones and DST follow the reference server:

- cron and RRULE are wall-clock rules: a wall time that happens twice when clocks go
  back fires once, at its first occurrence (an hourly cron pauses two hours); a wall
  time skipped when clocks go forward fires at the same time shifted by the gap
  (02:30 becomes 03:30), once, even if the rule also names that shifted time.
- an interval that is a whole number of days keeps its wall-clock time of day in
  its timezone (daily at 09:00 stays at 09:00 across DST, with the same gap and fold
  policy); any other interval is exact elapsed time from the anchor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from headrace.scheduling import rrules, walltime
from headrace.scheduling.schedules import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
)

_DAY = timedelta(days=1)


def next_occurrences(
    schedule: Schedule, after: datetime, until: datetime | None = None, limit: int = 100
) -> list[datetime]:
    """The schedule's next occurrences after a cursor.

    Args:
        schedule: A parsed schedule.
        after: The cursor (aware); occurrences at or before it are not returned.
        until: The latest occurrence wanted (aware, inclusive); ``None`` for no bound.
        limit: At most this many are returned.

    Returns:
        Ascending, distinct, aware UTC datetimes.

    Raises:
        ValueError: `after` or `until` is naive.
    """
    for name, moment in (("after", after), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware")
    if limit <= 0 or (until is not None and until <= after):
        return []
    if isinstance(schedule, IntervalSchedule):
        if schedule.interval % _DAY:
            return walltime.take(_exact_steps(schedule, after), after, until, limit)
        walls = _calendar_days(schedule, after)
        return walltime.take(
            walltime.to_instants(walls, walltime.zone(schedule.timezone)), after, until, limit
        )
    tz = walltime.zone(schedule.timezone)
    floor = walltime.wall_floor(after, tz)
    if isinstance(schedule, CronSchedule):
        walls = _cron_walls(schedule, floor)
    else:
        ceiling = walltime.wall_ceiling(until, tz) if until is not None else None
        walls = rrules.walls(rrules.compile_rrule(schedule.rrule), floor, ceiling)
    return walltime.take(walltime.to_instants(walls, tz), after, until, limit)


def _exact_steps(schedule: IntervalSchedule, after: datetime) -> Iterator[datetime]:
    # The grid runs both ways from the anchor, as in the reference: an anchor in
    # the future still fixes the phase of the occurrences before it.
    step = schedule.interval
    index = (after - schedule.anchor_date) // step + 1
    try:
        while True:
            yield schedule.anchor_date + index * step
            index += 1
    except OverflowError:
        return


def _calendar_days(schedule: IntervalSchedule, after: datetime) -> Iterator[datetime]:
    tz = walltime.zone(schedule.timezone)
    anchor = schedule.anchor_date.astimezone(tz).replace(tzinfo=None)
    step = schedule.interval
    index = -((anchor - walltime.wall_floor(after, tz)) // step)
    try:
        while True:
            yield anchor + index * step
            index += 1
    except OverflowError:
        return


def _cron_walls(schedule: CronSchedule, floor: datetime) -> Iterator[datetime]:
    # croniter is exclusive of its start and works on naive wall times here.
    # Imported on first use: a server without cron schedules never loads croniter.
    from croniter import CroniterBadDateError, croniter

    walker = croniter(schedule.cron, floor - timedelta(seconds=1), day_or=schedule.day_or)
    while True:
        try:
            wall: datetime = walker.get_next(datetime)
        except (CroniterBadDateError, OverflowError):
            return
        yield wall
