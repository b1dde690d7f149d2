"""The three schedule shapes the Prefect client sends, validated and normalised.

Wire shapes (the JSON of ``DeploymentScheduleCreate.schedule``):

- cron: ``{"cron": str, "timezone": str | null, "day_or": bool}``
- interval: ``{"interval": seconds, "anchor_date": ISO datetime, "timezone": str | null}``
- rrule: ``{"rrule": str, "timezone": str | null}``

`parse_schedule` reads one into a frozen dataclass and `to_wire` gives back the JSON
the server stores and echoes, with the reference server's defaults filled in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from headrace.errors import InvalidInput
from headrace.scheduling import rrules, walltime


class ScheduleError(InvalidInput, ValueError):
    """A schedule the client sent cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Runs at the wall times a cron expression names, in `timezone` (UTC if unset)."""

    cron: str
    timezone: str | None = None
    day_or: bool = True


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Runs every `interval` on the grid through `anchor_date` (aware, UTC)."""

    interval: timedelta
    anchor_date: datetime
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class RRuleSchedule:
    """Runs at the wall times an RRULE text names, in `timezone` (UTC if unset)."""

    rrule: str
    timezone: str | None = "UTC"


Schedule = CronSchedule | IntervalSchedule | RRuleSchedule

_FIELDS = {
    "cron": frozenset({"cron", "timezone", "day_or"}),
    "interval": frozenset({"interval", "anchor_date", "timezone"}),
    "rrule": frozenset({"rrule", "timezone"}),
}
_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def parse_schedule(data: Mapping[str, Any], *, now: datetime | None = None) -> Schedule:
    """Validate a schedule in wire form.

    Args:
        data: The JSON object the client sent.
        now: The default ``anchor_date`` of an interval schedule that has none
            (the current time when not given).

    Returns:
        The schedule, with the reference server's defaults applied.

    Raises:
        ScheduleError: The shape is unknown, a field has the wrong type, or the cron
            expression, RRULE, timezone or interval is invalid.
    """
    if not isinstance(data, Mapping):
        raise ScheduleError("a schedule must be an object with a cron, interval or rrule")
    kinds = [kind for kind in _FIELDS if kind in data]
    if len(kinds) != 1:
        raise ScheduleError("a schedule needs exactly one of 'cron', 'interval' or 'rrule'")
    kind = kinds[0]
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        raise ScheduleError(f"unknown field(s) for a {kind} schedule: {', '.join(unknown)}")
    if kind == "cron":
        return _parse_cron(data)
    if kind == "interval":
        return _parse_interval(data, now)
    return _parse_rrule(data)


def to_wire(schedule: Schedule) -> dict[str, Any]:
    """The JSON form of a schedule, as the server stores and returns it."""
    if isinstance(schedule, CronSchedule):
        return {"cron": schedule.cron, "timezone": schedule.timezone, "day_or": schedule.day_or}
    if isinstance(schedule, IntervalSchedule):
        return {
            "interval": schedule.interval.total_seconds(),
            "anchor_date": schedule.anchor_date.isoformat(),
            "timezone": schedule.timezone,
        }
    return {"rrule": schedule.rrule, "timezone": schedule.timezone}


def _timezone(value: Any) -> str | None:
    """A valid IANA name, or ``None`` for null or an empty string."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value not in walltime.timezone_names():
        raise ScheduleError(
            f'Invalid timezone: "{value}" (specify in IANA tzdata format, for example,'
            " America/New_York)"
        )
    return value


def _parse_cron(data: Mapping[str, Any]) -> CronSchedule:
    from croniter import croniter  # loaded on first use, like in occurrences

    expression = data["cron"]
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise ScheduleError(f'Invalid cron string: "{expression}"')
    # croniter's random ("R") and hashed ("H") fields are not cron; the reference
    # rejects them too.
    if any(field.casefold() in ("r", "h") for field in expression.split()):
        raise ScheduleError(
            f'Random and Hashed expressions are unsupported, received: "{expression}"'
        )
    day_or = data.get("day_or", True)
    if not isinstance(day_or, bool):
        raise ScheduleError(f"day_or must be true or false, not {day_or!r}")
    return CronSchedule(cron=expression, timezone=_timezone(data.get("timezone")), day_or=day_or)


def _parse_interval(data: Mapping[str, Any], now: datetime | None) -> IntervalSchedule:
    raw = data["interval"]
    if isinstance(raw, bool) or (isinstance(raw, float) and not math.isfinite(raw)):
        raise ScheduleError(f"interval must be a number of seconds, not {raw!r}")
    try:
        interval = _DURATION.validate_python(raw)
    except (ValidationError, OverflowError):
        raise ScheduleError(
            f"interval must be a number of seconds or an ISO 8601 duration, not {raw!r}"
        ) from None
    if interval <= timedelta(0):
        raise ScheduleError("interval must be positive")

    anchor = data.get("anchor_date")
    if anchor is None:
        anchor = now or datetime.now(UTC)
    elif isinstance(anchor, str):
        try:
            anchor = datetime.fromisoformat(anchor)
        except ValueError:
            raise ScheduleError(f"anchor_date is not an ISO 8601 datetime: {anchor!r}") from None
    elif not isinstance(anchor, datetime):
        raise ScheduleError(f"anchor_date is not an ISO 8601 datetime: {anchor!r}")
    # As the reference: a naive anchor is UTC, and with no timezone given the zone
    # is the anchor's own IANA zone if it has one (an ISO offset is not a zone).
    if anchor.tzinfo is None:
        anchor = anchor.replace(tzinfo=UTC)
    timezone = _timezone(data.get("timezone"))
    if timezone is None:
        key = anchor.tzinfo.key if isinstance(anchor.tzinfo, ZoneInfo) else None
        timezone = key if key in walltime.timezone_names() else "UTC"
    return IntervalSchedule(
        interval=interval, anchor_date=anchor.astimezone(UTC), timezone=timezone
    )


def _parse_rrule(data: Mapping[str, Any]) -> RRuleSchedule:
    text = data["rrule"]
    if not isinstance(text, str):
        raise ScheduleError(f"rrule must be a string, not {text!r}")
    try:
        rrules.compile_rrule(text)
    except ValueError as exc:
        shown = text if len(text) <= 80 else text[:40] + "..."
        raise ScheduleError(f'Invalid RRule string "{shown}": {exc}') from None
    # A missing timezone means UTC; an explicit null is kept, as the reference does.
    timezone = _timezone(data["timezone"]) if "timezone" in data else "UTC"
    if "DTSTART" not in text.upper():
        # The reference writes its implicit anchor into the stored text; the same
        # anchor makes this a change of spelling only, never of occurrences.
        text = f"DTSTART:{rrules.DEFAULT_DTSTART:%Y%m%dT%H%M%S}\n{text}"
    return RRuleSchedule(rrule=text, timezone=timezone)
