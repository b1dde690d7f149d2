"""Schedule math: parse the client's cron, interval and RRULE schedules, and compute
their occurrences forward from a cursor. Pure: no I/O, no clock unless asked."""

from headrace.scheduling.occurrences import next_occurrences
from headrace.scheduling.schedules import (
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
    to_wire,
)

__all__ = [
    "CronSchedule",
    "IntervalSchedule",
    "RRuleSchedule",
    "Schedule",
    "ScheduleError",
    "next_occurrences",
    "parse_schedule",
    "to_wire",
]
