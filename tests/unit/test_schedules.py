"""``headrace.scheduling``: parsing the three schedule shapes and their occurrences.

Every expected instant is written in UTC; comments give the wall time it stands for.
US DST in 2026: clocks go forward on 2026-03-08 at 02:00 EST and back on 2026-11-01
at 02:00 EDT (America/New_York).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dateutil.rrule import rrulestr

from headrace.errors import InvalidInput
from headrace.scheduling import (
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleError,
    next_occurrences,
    parse_schedule,
    rrules,
    to_wire,
)

NOW = datetime(2026, 5, 17, 12, 0, tzinfo=UTC)
NY = "America/New_York"


def at(text: str) -> datetime:
    """An aware UTC datetime from ``YYYY-MM-DDTHH:MM[:SS]`` (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def times(*texts: str) -> list[datetime]:
    return [at(text) for text in texts]


# -- parsing -------------------------------------------------------------------------

VALID: list[tuple[dict[str, Any], Any, dict[str, Any]]] = [
    (
        {"cron": "* * * * *"},
        CronSchedule("* * * * *", None, True),
        {"cron": "* * * * *", "timezone": None, "day_or": True},
    ),
    (
        {"cron": "0 9 * * MON-FRI", "timezone": NY, "day_or": False},
        CronSchedule("0 9 * * MON-FRI", NY, False),
        {"cron": "0 9 * * MON-FRI", "timezone": NY, "day_or": False},
    ),
    (
        {"cron": "@hourly", "timezone": ""},
        CronSchedule("@hourly", None, True),
        {"cron": "@hourly", "timezone": None, "day_or": True},
    ),
    (
        {"interval": 60},
        IntervalSchedule(timedelta(seconds=60), NOW, "UTC"),
        {"interval": 60.0, "anchor_date": "2026-05-17T12:00:00+00:00", "timezone": "UTC"},
    ),
    (
        {"interval": 90.5, "anchor_date": "2026-01-01T09:00:00-05:00", "timezone": NY},
        IntervalSchedule(timedelta(seconds=90.5), at("2026-01-01T14:00"), NY),
        {"interval": 90.5, "anchor_date": "2026-01-01T14:00:00+00:00", "timezone": NY},
    ),
    (
        # A naive anchor is UTC; an ISO offset is not a zone, so the zone is UTC.
        {"interval": "PT1H", "anchor_date": "2026-01-01T00:00:00", "timezone": None},
        IntervalSchedule(timedelta(hours=1), at("2026-01-01T00:00"), "UTC"),
        {"interval": 3600.0, "anchor_date": "2026-01-01T00:00:00+00:00", "timezone": "UTC"},
    ),
    (
        {"interval": 3600, "anchor_date": "2026-01-01T00:00:00+09:00"},
        IntervalSchedule(timedelta(hours=1), at("2025-12-31T15:00"), "UTC"),
        {"interval": 3600.0, "anchor_date": "2025-12-31T15:00:00+00:00", "timezone": "UTC"},
    ),
    (
        # The reference writes its implicit DTSTART into a bare rule.
        {"rrule": "FREQ=HOURLY"},
        RRuleSchedule("DTSTART:20200101T000000\nFREQ=HOURLY", "UTC"),
        {"rrule": "DTSTART:20200101T000000\nFREQ=HOURLY", "timezone": "UTC"},
    ),
    (
        {"rrule": "DTSTART:20260101T090000\nRRULE:FREQ=DAILY", "timezone": None},
        RRuleSchedule("DTSTART:20260101T090000\nRRULE:FREQ=DAILY", None),
        {"rrule": "DTSTART:20260101T090000\nRRULE:FREQ=DAILY", "timezone": None},
    ),
    (
        {"rrule": "RRULE:FREQ=DAILY;UNTIL=20300101T000000Z", "timezone": "Europe/Paris"},
        RRuleSchedule(
            "DTSTART:20200101T000000\nRRULE:FREQ=DAILY;UNTIL=20300101T000000Z", "Europe/Paris"
        ),
        {
            "rrule": "DTSTART:20200101T000000\nRRULE:FREQ=DAILY;UNTIL=20300101T000000Z",
            "timezone": "Europe/Paris",
        },
    ),
]


@pytest.mark.parametrize(("wire", "parsed", "echoed"), VALID)
def test_parse_valid(wire: dict[str, Any], parsed: Any, echoed: dict[str, Any]) -> None:
    schedule = parse_schedule(wire, now=NOW)

    assert schedule == parsed
    assert to_wire(schedule) == echoed
    assert parse_schedule(to_wire(schedule), now=NOW) == schedule


INVALID: list[tuple[Any, str]] = [
    ({"cron": "61 * * * *"}, 'Invalid cron string: "61 \\* \\* \\* \\*"'),
    ({"cron": "* * *"}, "Invalid cron string"),
    ({"cron": ""}, "Invalid cron string"),
    ({"cron": "*/0 * * * *"}, "Invalid cron string"),
    ({"cron": 5}, "Invalid cron string"),
    ({"cron": "R * * * *"}, "Random and Hashed expressions are unsupported"),
    ({"cron": "H * * * *"}, "cron"),
    (
        {"cron": "* * * * *", "timezone": "Mars/Olympus_Mons"},
        'Invalid timezone: "Mars/Olympus_Mons"',
    ),
    ({"cron": "* * * * *", "day_or": "yes"}, "day_or must be true or false"),
    ({"interval": 0}, "interval must be positive"),
    ({"interval": -60}, "interval must be positive"),
    ({"interval": "soon"}, "interval must be a number of seconds"),
    ({"interval": True}, "interval must be a number of seconds"),
    ({"interval": float("nan")}, "interval must be a number of seconds"),
    ({"interval": 60, "anchor_date": "yesterday"}, "anchor_date is not an ISO 8601 datetime"),
    ({"interval": 60, "anchor_date": 12}, "anchor_date is not an ISO 8601 datetime"),
    ({"interval": 60, "timezone": "Eastern"}, 'Invalid timezone: "Eastern"'),
    ({"rrule": "FREQ=SOMETIMES"}, 'Invalid RRule string "FREQ=SOMETIMES"'),
    ({"rrule": "FREQ=DAILY;BYDAY=XX"}, "Invalid RRule string"),
    ({"rrule": "INTERVAL=2"}, "Invalid RRule string"),
    ({"rrule": ""}, "Invalid RRule string"),
    ({"rrule": "DTSTART:tomorrow\nRRULE:FREQ=DAILY"}, "Invalid RRule string"),
    ({"rrule": "FREQ=DAILY\nRDATE:" + ",".join(["20260101T000000"] * 500)}, "Max length is 6500"),
    ({"rrule": ["FREQ=DAILY"]}, "rrule must be a string"),
    ({"rrule": "FREQ=DAILY", "timezone": "Nowhere/Special"}, "Invalid timezone"),
    ({"cron": "* * * * *", "interval": 60}, "exactly one of 'cron', 'interval' or 'rrule'"),
    ({"timezone": "UTC"}, "exactly one of"),
    (
        {"cron": "* * * * *", "max_active_runs": 1},
        "unknown field\\(s\\) for a cron schedule: max_active_runs",
    ),
    ("* * * * *", "must be an object"),
]


@pytest.mark.parametrize(("wire", "message"), INVALID)
def test_parse_invalid(wire: Any, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(wire, now=NOW)


def test_schedule_error_is_a_422_and_a_value_error() -> None:
    assert issubclass(ScheduleError, InvalidInput)
    assert issubclass(ScheduleError, ValueError)


# -- occurrences ---------------------------------------------------------------------

OCCURRENCES: list[tuple[str, dict[str, Any], str, int, list[datetime]]] = [
    (
        "cron every minute",
        {"cron": "* * * * *"},
        "2026-01-01T00:00:30",
        3,
        times("2026-01-01T00:01", "2026-01-01T00:02", "2026-01-01T00:03"),
    ),
    (
        "cron cursor is exclusive",
        {"cron": "* * * * *"},
        "2026-01-01T00:01",
        2,
        times("2026-01-01T00:02", "2026-01-01T00:03"),
    ),
    (
        # 00:00 EST, 01:00 EST, 02:00 does not exist and is 03:00 EDT, which runs once.
        "cron hourly across spring forward",
        {"cron": "0 * * * *", "timezone": NY},
        "2026-03-08T04:30",
        5,
        times(
            "2026-03-08T05:00",
            "2026-03-08T06:00",
            "2026-03-08T07:00",
            "2026-03-08T08:00",
            "2026-03-08T09:00",
        ),
    ),
    (
        # 00:00 EDT, 01:00 EDT, then the repeated 01:00 (EST) is skipped: 02:00 EST.
        "cron hourly across fall back",
        {"cron": "0 * * * *", "timezone": NY},
        "2026-11-01T03:30",
        4,
        times("2026-11-01T04:00", "2026-11-01T05:00", "2026-11-01T07:00", "2026-11-01T08:00"),
    ),
    (
        # 02:30 EST; on the 8th 02:30 does not exist and runs at 03:30 EDT; 02:30 EDT.
        "cron daily in the spring-forward gap",
        {"cron": "30 2 * * *", "timezone": NY},
        "2026-03-07T00:00",
        3,
        times("2026-03-07T07:30", "2026-03-08T07:30", "2026-03-09T06:30"),
    ),
    (
        # 01:30 EDT, 01:30 EDT on the 1st (the first of the two), 01:30 EST.
        "cron daily in the repeated hour",
        {"cron": "30 1 * * *", "timezone": NY},
        "2026-10-31T00:00",
        3,
        times("2026-10-31T05:30", "2026-11-01T05:30", "2026-11-02T06:30"),
    ),
    (
        # The cursor is 01:10 EST, inside the repeated hour: 01:15.. were EDT, before it.
        "cron cursor inside the repeated hour",
        {"cron": "*/15 * * * *", "timezone": NY},
        "2026-11-01T06:10",
        2,
        times("2026-11-01T07:00", "2026-11-01T07:15"),
    ),
    (
        # The cursor is 03:10 EDT, just after the gap.
        "cron cursor just after the gap",
        {"cron": "*/15 * * * *", "timezone": NY},
        "2026-03-08T07:10",
        3,
        times("2026-03-08T07:15", "2026-03-08T07:30", "2026-03-08T07:45"),
    ),
    (
        # Mondays, or the 1st (a Sunday in February).
        "cron day_or true",
        {"cron": "0 0 1 * MON", "day_or": True},
        "2026-01-01T00:00",
        6,
        times(
            "2026-01-05T00:00",
            "2026-01-12T00:00",
            "2026-01-19T00:00",
            "2026-01-26T00:00",
            "2026-02-01T00:00",
            "2026-02-02T00:00",
        ),
    ),
    (
        "cron day_or false: a Monday that is the 1st",
        {"cron": "0 0 1 * MON", "day_or": False},
        "2026-01-01T00:00",
        3,
        times("2026-06-01T00:00", "2027-02-01T00:00", "2027-03-01T00:00"),
    ),
    (
        "cron that never fires",
        {"cron": "0 0 30 2 *"},
        "2026-01-01T00:00",
        3,
        [],
    ),
    (
        # 10 years of 1-minute intervals since the anchor: a jump, not a walk.
        "interval far-past anchor",
        {"interval": 60, "anchor_date": "2016-01-01T00:00:17Z"},
        "2026-05-17T12:34:56.789",
        3,
        times("2026-05-17T12:35:17", "2026-05-17T12:36:17", "2026-05-17T12:37:17"),
    ),
    (
        "interval cursor on the grid",
        {"interval": 60, "anchor_date": "2016-01-01T00:00:00Z"},
        "2026-05-17T12:35",
        1,
        times("2026-05-17T12:36"),
    ),
    (
        "interval anchor in the future keeps its phase",
        {"interval": 3600, "anchor_date": "2030-01-01T00:20:00Z"},
        "2026-01-01T00:30",
        2,
        times("2026-01-01T01:20", "2026-01-01T02:20"),
    ),
    (
        # Shorter than a day: every elapsed hour, the repeated 01:00 included.
        "interval hourly across fall back",
        {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": NY},
        "2026-11-01T03:30",
        4,
        times("2026-11-01T04:00", "2026-11-01T05:00", "2026-11-01T06:00", "2026-11-01T07:00"),
    ),
    (
        # Whole days keep 09:00 local: EST then EDT.
        "interval daily across spring forward",
        {"interval": 86400, "anchor_date": "2026-01-01T09:00:00-05:00", "timezone": NY},
        "2026-03-06T00:00",
        4,
        times("2026-03-06T14:00", "2026-03-07T14:00", "2026-03-08T13:00", "2026-03-09T13:00"),
    ),
    (
        "interval daily across fall back",
        {"interval": 86400, "anchor_date": "2026-01-01T09:00:00-05:00", "timezone": NY},
        "2026-10-31T00:00",
        3,
        times("2026-10-31T13:00", "2026-11-01T14:00", "2026-11-02T14:00"),
    ),
    (
        # 02:30 local: 03:30 EDT on the day it does not exist, 02:30 again after.
        "interval daily in the gap",
        {"interval": 86400, "anchor_date": "2026-01-01T02:30:00-05:00", "timezone": NY},
        "2026-03-07T00:00",
        3,
        times("2026-03-07T07:30", "2026-03-08T07:30", "2026-03-09T06:30"),
    ),
    (
        "interval weekly in a timezone",
        {"interval": 7 * 86400, "anchor_date": "2026-01-05T09:00:00-05:00", "timezone": NY},
        "2026-03-01T00:00",
        3,
        times("2026-03-02T14:00", "2026-03-09T13:00", "2026-03-16T13:00"),
    ),
    (
        # Not whole days: exact elapsed time whatever the timezone.
        "interval 36 hours across spring forward",
        {"interval": 36 * 3600, "anchor_date": "2026-03-06T00:00:00Z", "timezone": NY},
        "2026-03-06T00:00",
        3,
        times("2026-03-07T12:00", "2026-03-09T00:00", "2026-03-10T12:00"),
    ),
    (
        "rrule hourly without DTSTART",
        {"rrule": "FREQ=HOURLY"},
        "2026-05-17T12:34:56",
        2,
        times("2026-05-17T13:00", "2026-05-17T14:00"),
    ),
    (
        # Without DTSTART a weekly rule starts on Wednesday 2020-01-01, at midnight.
        "rrule weekly without DTSTART",
        {"rrule": "FREQ=WEEKLY;INTERVAL=2"},
        "2026-05-17T00:00",
        2,
        times("2026-05-27T00:00", "2026-06-10T00:00"),
    ),
    (
        # 09:00 local: EST then EDT.
        "rrule daily at 09:00 across spring forward",
        {"rrule": "FREQ=DAILY;BYHOUR=9", "timezone": NY},
        "2026-03-07T00:00",
        3,
        times("2026-03-07T14:00", "2026-03-08T13:00", "2026-03-09T13:00"),
    ),
    (
        "rrule daily in the gap",
        {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "timezone": NY},
        "2026-03-07T00:00",
        3,
        times("2026-03-07T07:30", "2026-03-08T07:30", "2026-03-09T06:30"),
    ),
    (
        "rrule with DTSTART and EXDATE",
        {
            "rrule": "DTSTART:20260101T090000\nRRULE:FREQ=DAILY\nEXDATE:20260103T090000,20260105T090000",
            "timezone": NY,
        },
        "2026-01-01T00:00",
        4,
        times("2026-01-01T14:00", "2026-01-02T14:00", "2026-01-04T14:00", "2026-01-06T14:00"),
    ),
    (
        "rrule with EXRULE and RDATE",
        {
            "rrule": "DTSTART:20260105T090000\nRRULE:FREQ=DAILY\n"
            "EXRULE:FREQ=WEEKLY;BYDAY=SA,SU\nRDATE:20260110T120000",
        },
        "2026-01-08T00:00",
        4,
        times("2026-01-08T09:00", "2026-01-09T09:00", "2026-01-10T12:00", "2026-01-12T09:00"),
    ),
    (
        # dateutil would search day by day up to the year 9999 for February 30th.
        "rrule that never occurs",
        {"rrule": "FREQ=DAILY;BYMONTH=2,4;BYMONTHDAY=30,31"},
        "2026-01-01T00:00",
        3,
        times("2026-04-30T00:00", "2027-04-30T00:00", "2028-04-30T00:00"),
    ),
    (
        "rrule that can never occur",
        {"rrule": "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30"},
        "2026-01-01T00:00",
        3,
        [],
    ),
    (
        "rrule with COUNT ends",
        {"rrule": "DTSTART:20260101T000000\nRRULE:FREQ=DAILY;COUNT=3"},
        "2026-01-01T12:00",
        5,
        times("2026-01-02T00:00", "2026-01-03T00:00"),
    ),
    (
        # A bare rule may give UNTIL in UTC; it is read, like every date, as wall time.
        "rrule UNTIL is inclusive",
        {"rrule": "FREQ=DAILY;UNTIL=20200105T000000Z"},
        "2020-01-02T12:00",
        5,
        times("2020-01-03T00:00", "2020-01-04T00:00", "2020-01-05T00:00"),
    ),
    (
        # The schedule's timezone wins over a TZID, keeping the wall digits (reference).
        "rrule TZID is relabelled to the schedule timezone",
        {"rrule": "DTSTART;TZID=Europe/Paris:20260101T090000\nRRULE:FREQ=DAILY", "timezone": NY},
        "2026-01-01T00:00",
        2,
        times("2026-01-01T14:00", "2026-01-02T14:00"),
    ),
]


@pytest.mark.parametrize(
    ("wire", "after", "limit", "expected"),
    [case[1:] for case in OCCURRENCES],
    ids=[case[0] for case in OCCURRENCES],
)
def test_next_occurrences(
    wire: dict[str, Any], after: str, limit: int, expected: list[datetime]
) -> None:
    got = next_occurrences(parse_schedule(wire, now=NOW), at(after), limit=limit)

    assert got == expected
    assert all(moment.tzinfo is UTC for moment in got)


def test_until_is_inclusive_and_bounds_every_kind() -> None:
    for wire in (
        {"cron": "0 * * * *"},
        {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z"},
        {"rrule": "FREQ=HOURLY"},
    ):
        schedule = parse_schedule(wire, now=NOW)
        got = next_occurrences(schedule, at("2026-01-01T00:00"), at("2026-01-01T03:00"), 10)
        assert got == times("2026-01-01T01:00", "2026-01-01T02:00", "2026-01-01T03:00")
        assert next_occurrences(schedule, at("2026-01-01T03:00"), at("2026-01-01T03:00"), 10) == []
        assert next_occurrences(schedule, at("2026-01-01T00:00"), None, 0) == []


def test_naive_cursor_is_refused() -> None:
    with pytest.raises(ValueError, match="after must be timezone-aware"):
        next_occurrences(parse_schedule({"cron": "* * * * *"}), datetime(2026, 1, 1), limit=1)


# -- the cursor: stable continuation, no historical walk ----------------------------

CONTINUED = [
    {"cron": "* * * * *"},
    {"cron": "0 * * * *", "timezone": NY},
    {"cron": "*/7 1-3 * * *", "timezone": NY},
    {"cron": "30 2 * * *", "timezone": NY, "day_or": False},
    {"interval": 60, "anchor_date": "2016-01-01T00:00:17Z"},
    {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": NY},
    {"interval": 86400, "anchor_date": "2026-01-01T02:30:00-05:00", "timezone": NY},
    {"interval": 36 * 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": NY},
    {"rrule": "FREQ=HOURLY", "timezone": NY},
    {"rrule": "FREQ=MINUTELY;INTERVAL=7", "timezone": NY},
    {"rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;BYSETPOS=1"},
    {"rrule": "DTSTART:20260101T023000\nRRULE:FREQ=DAILY\nEXDATE:20260310T023000", "timezone": NY},
]


@pytest.mark.parametrize("wire", CONTINUED, ids=lambda wire: str(wire))
@pytest.mark.parametrize("start", ["2026-03-08T04:00", "2026-11-01T04:00"])
def test_chunks_continue_one_long_call(wire: dict[str, Any], start: str) -> None:
    schedule = parse_schedule(wire, now=NOW)
    whole = next_occurrences(schedule, at(start), limit=50)

    chunks: list[datetime] = []
    cursor = at(start)
    for _ in range(10):
        chunk = next_occurrences(schedule, cursor, limit=5)
        chunks += chunk
        cursor = chunk[-1]

    assert len(whole) == 50
    assert chunks == whole
    assert whole == sorted(set(whole))


def test_rrule_without_dtstart_continued_many_times_equals_one_walk() -> None:
    schedule = parse_schedule({"rrule": "FREQ=HOURLY"})
    start = at("2026-05-17T12:34:56")

    continued: list[datetime] = []
    cursor = start
    for _ in range(200):
        chunk = next_occurrences(schedule, cursor, limit=5)
        continued += chunk
        cursor = chunk[-1]

    walk = rrulestr("FREQ=HOURLY", dtstart=datetime(2020, 1, 1, tzinfo=UTC))
    expected = []
    for moment in walk.xafter(start):
        expected.append(moment)
        if len(expected) == 1000:
            break
    assert continued == next_occurrences(schedule, start, limit=1000) == expected


@pytest.mark.parametrize(
    ("rule", "period"),
    [
        ("FREQ=SECONDLY", timedelta(seconds=1)),
        ("FREQ=MINUTELY;INTERVAL=7", timedelta(minutes=7)),
        ("FREQ=HOURLY;INTERVAL=5", timedelta(hours=5)),
        ("FREQ=DAILY", timedelta(days=1)),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR", timedelta(weeks=2)),
        ("FREQ=MONTHLY;BYMONTHDAY=31", timedelta(days=62)),
        ("FREQ=YEARLY;INTERVAL=3", timedelta(days=3 * 366)),
    ],
)
def test_rrule_walk_starts_next_to_the_cursor(rule: str, period: timedelta) -> None:
    # The cost of an RRULE without DTSTART must not grow with the years since 2020:
    # the first wall time dateutil produces is within one period of the cursor.
    for floor in (datetime(2021, 2, 3, 4, 5, 6), datetime(2031, 7, 8, 9, 10, 11)):
        first = next(rrules.walls(rrules.compile_rrule(rule), floor, None))
        assert floor - period <= first


# Rule shapes whose re-anchoring must not change a single occurrence, checked
# against dateutil walking from the start.
SHAPES = [
    "FREQ=SECONDLY;INTERVAL=7919",
    "FREQ=MINUTELY;INTERVAL=13;BYHOUR=9,10",
    "FREQ=HOURLY;INTERVAL=7;BYHOUR=1,8,15",
    "FREQ=DAILY;INTERVAL=3",
    "FREQ=DAILY;BYSETPOS=-1;BYHOUR=3,9,22",
    "FREQ=WEEKLY;INTERVAL=3",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;BYSETPOS=-1;WKST=SU",
    "FREQ=MONTHLY;INTERVAL=5",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO;BYSETPOS=2",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
    "FREQ=YEARLY;INTERVAL=2",
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtstart", ["", "DTSTART:20200229T133007\n", "DTSTART:20200131T235959\n"])
def test_rrule_reanchoring_keeps_every_occurrence(shape: str, dtstart: str) -> None:
    text = dtstart + shape
    schedule = parse_schedule({"rrule": text})
    walk = rrulestr(text, dtstart=datetime(2020, 1, 1), forceset=True)
    for after in (at("2021-06-15T10:11:12"), at("2022-12-31T23:59:59")):
        expected = []
        for wall in walk.xafter(after.replace(tzinfo=None)):
            expected.append(wall.replace(tzinfo=UTC))
            if len(expected) == 20:
                break
        assert next_occurrences(schedule, after, limit=20) == expected
