"""RRULE text (RFC 5545, as python-dateutil reads it) walked forward from a cursor.

Every date in the text is read as a wall time in the schedule's timezone: a ``Z``
suffix or a ``TZID`` on ``DTSTART``/``UNTIL``/``RDATE``/``EXDATE`` is dropped and its
digits kept, which is what the reference server does when it relabels them with the
schedule's ``timezone``. A rule without ``DTSTART`` starts at 2020-01-01 00:00, the
reference's implicit anchor, so its occurrences are the reference's.

dateutil walks a rule from its ``DTSTART``, so a rule anchored in 2020 would cost one
step per elapsed occurrence on every call. Before walking, each rule without
``COUNT`` is re-anchored at the start of the last period of its own grid that
begins at or before the cursor. Its occurrences from there on are unchanged: the
period grid (``INTERVAL`` counted from the original start) is kept, and the parts
dateutil derives from ``DTSTART`` (``BYMONTH``, ``BYMONTHDAY``, ``BYDAY``, the time of
day) are passed explicitly. A rule with ``COUNT`` is finite and walked from its
start; its cost is bounded by ``COUNT``, not by elapsed time.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dateutil.rrule import (
    DAILY,
    HOURLY,
    MINUTELY,
    MONTHLY,
    SECONDLY,
    WEEKLY,
    YEARLY,
    rruleset,
    rrulestr,
)

DEFAULT_DTSTART = datetime(2020, 1, 1)
"""Where a rule without ``DTSTART`` starts (the reference server's implicit anchor)."""

MAX_RRULE_LENGTH = 6500
"""The longest RRULE text accepted, as in the reference (about a year of RDATEs)."""

_STEP = {
    WEEKLY: timedelta(weeks=1),
    DAILY: timedelta(days=1),
    HOURLY: timedelta(hours=1),
    MINUTELY: timedelta(minutes=1),
    SECONDLY: timedelta(seconds=1),
}


_LONGEST_MONTH = dict(enumerate((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31), start=1))


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An RRULE text split into its parts, every date a naive wall time."""

    rules: tuple[Any, ...]
    exrules: tuple[Any, ...]
    rdates: tuple[datetime, ...]
    exdates: tuple[datetime, ...]


def _no_zone(_name: str) -> None:
    return None


@functools.lru_cache(maxsize=2048)
def compile_rrule(text: str) -> CompiledRule:
    """Parse RRULE text.

    Args:
        text: One or more lines of ``DTSTART``, ``RRULE`` (or a bare rule),
            ``EXRULE``, ``RDATE`` and ``EXDATE``.

    Returns:
        The parsed parts.

    Raises:
        ValueError: The text is too long or dateutil cannot read it.
    """
    if len(text) > MAX_RRULE_LENGTH:
        raise ValueError(f"Max length is {MAX_RRULE_LENGTH}, got {len(text)}")
    with warnings.catch_warnings():
        # dateutil deprecates COUNT together with UNTIL but still honours it.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            parsed = rrulestr(
                text,
                dtstart=DEFAULT_DTSTART,
                forceset=True,
                ignoretz=True,
                tzids=_no_zone,
            )
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
            raise ValueError(str(exc) or type(exc).__name__) from None
    return CompiledRule(
        rules=tuple(rule for rule in parsed._rrule if _can_occur(rule)),
        exrules=tuple(rule for rule in parsed._exrule if _can_occur(rule)),
        rdates=tuple(sorted(parsed._rdate)),
        exdates=tuple(sorted(parsed._exdate)),
    )


def _can_occur(rule: Any) -> bool:
    """False for a rule whose days of the month exist in none of its months.

    dateutil searches such a rule (``BYMONTH=2;BYMONTHDAY=30``) day by day up to the
    year 9999 before it gives up, which takes seconds; it can never yield, so it is
    left out. Other rules that never match are not detected.
    """
    days = tuple(rule._bymonthday or ()) + tuple(-day for day in rule._bynmonthday or ())
    if not days:
        return True
    months = rule._bymonth or range(1, 13)
    return any(day <= _LONGEST_MONTH[month] for month in months for day in days)


def walls(compiled: CompiledRule, floor: datetime, ceiling: datetime | None) -> Iterator[datetime]:
    """The rule's naive wall times from about `floor` on, ascending.

    Args:
        compiled: The parsed rule.
        floor: No wall time before this is needed; a few before it may be yielded.
        ceiling: No wall time after this is needed (``None``: no end).

    Returns:
        An iterator whose cost to its first yield does not grow with the distance
        between the rule's start and `floor` (except for rules with ``COUNT``).
    """
    merged = rruleset()
    for rule in compiled.rules:
        merged.rrule(_advance(rule, floor, ceiling))
    for rule in compiled.exrules:
        merged.exrule(_advance(rule, floor, ceiling))
    for day in compiled.rdates:
        if day >= floor and (ceiling is None or day <= ceiling):
            merged.rdate(day)
    for day in compiled.exdates:
        if day >= floor:
            merged.exdate(day)
    return iter(merged)


def _advance(rule: Any, floor: datetime, ceiling: datetime | None) -> Any:
    if rule._count is not None:
        return rule
    changes: dict[str, Any] = {}
    if ceiling is not None and (rule._until is None or rule._until > ceiling):
        # Bounds dateutil's own search for rules that rarely or never match.
        changes["until"] = ceiling
    if floor > rule._dtstart:
        changes.update(_anchor_near(rule, floor))
    return rule.replace(**changes) if changes else rule


def _anchor_near(rule: Any, floor: datetime) -> dict[str, Any]:
    """``replace`` arguments that move `rule`'s start to the latest period start of
    its grid at or before `floor`, keeping every occurrence from there on."""
    start: datetime = rule._dtstart
    freq: int = rule._freq
    interval: int = rule._interval
    if freq in (DAILY, HOURLY, MINUTELY, SECONDLY):
        # The first period is whole from the start's own unit, and the time of day
        # dateutil derives from the start is kept by whole-unit steps.
        unit = _STEP[freq] * interval
        periods = (floor - start) // unit
        return {"dtstart": start + periods * unit} if periods > 0 else {}
    if freq == WEEKLY:
        # dateutil's first week runs from the start to the week's end only, which
        # changes BYSETPOS: anchor at the beginning of a week of the grid.
        first_week = start.date() - timedelta(days=(start.weekday() - rule._wkst) % 7)
        floor_week = floor.date() - timedelta(days=(floor.weekday() - rule._wkst) % 7)
        weeks = (floor_week - first_week).days // 7 // interval * interval
        if weeks <= 0:
            return {}
        anchor = datetime.combine(first_week + timedelta(weeks=weeks), datetime.min.time())
    else:
        months = (floor.year - start.year) * 12 + floor.month - start.month
        span = interval * (12 if freq == YEARLY else 1)
        months = months // span * span
        if months <= 0:
            return {}
        year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
        anchor = datetime(year, month + 1 if freq == MONTHLY else 1, 1)
    return {"dtstart": anchor, **_derived_parts(rule)}


def _derived_parts(rule: Any) -> dict[str, Any]:
    """The BYxxx parts dateutil filled in from the start, made explicit."""
    start: datetime = rule._dtstart
    given: dict[str, Any] = rule._original_rule
    parts: dict[str, Any] = {}
    # dateutil records a part it derived as present with the value None.
    if "bymonth" in given and given["bymonth"] is None:
        parts["bymonth"] = start.month
    if "bymonthday" in given and given["bymonthday"] is None:
        parts["bymonthday"] = start.day
    if "byweekday" in given and given["byweekday"] is None:
        parts["byweekday"] = start.weekday()
    for name, value in (("byhour", start.hour), ("byminute", start.minute)):
        if name not in given:
            parts[name] = value
    if "bysecond" not in given:
        parts["bysecond"] = start.second
    return parts
