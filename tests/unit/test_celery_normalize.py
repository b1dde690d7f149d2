"""Celery message bodies into events: bad input is counted and skipped, long texts cut.

Also the consumer's reconnect backoff (pure).
"""

from __future__ import annotations

import pytest

from headrace.celery_monitor.consumer import _safe_url, backoff_delay, is_amqp
from headrace.celery_monitor.normalize import (
    CeleryEvent,
    clean_text,
    parse_body,
    parse_event,
    truncate,
)

NOW = 1_700_000_000.0


def task(**fields: object) -> dict[str, object]:
    return {"type": "task-received", "uuid": "t1", "hostname": "w1@h", "timestamp": NOW, **fields}


def test_a_single_event() -> None:
    parsed = parse_body(task(clock=12, name="tiny.add", args="(1,)"), NOW + 1, 1000)

    (event,) = parsed.events
    assert (event.group, event.subject, event.type) == ("task", "received", "task-received")
    assert (event.uuid, event.hostname, event.clock) == ("t1", "w1@h", 12)
    assert (event.timestamp, event.local_received) == (NOW, NOW + 1)
    assert event.fields["args"] == "(1,)"
    assert (parsed.malformed, parsed.unknown) == (0, 0)


def test_a_list_body_keeps_the_good_items_around_the_bad() -> None:
    body = [
        task(uuid="a"),
        "not an event",
        {"no": "type"},
        {"type": 42},
        {"type": "nodash"},
        {"type": "task-"},
        {"type": "task-received", "hostname": "w"},  # no uuid
        {"type": "worker-heartbeat"},  # no hostname
        {"type": "custom-thing", "hostname": "w"},
        {"type": "x" * 100 + "-y"},
        task(uuid="b"),
    ]

    parsed = parse_body(body, NOW, 1000)

    assert [e.uuid for e in parsed.events] == ["a", "b"]
    assert parsed.malformed == 7
    assert parsed.unknown == 2  # custom-thing and the long group name


@pytest.mark.parametrize("body", [None, 1, "text", b"bytes", [None, []], {"type": None}])
def test_garbage_bodies_never_raise(body: object) -> None:
    parsed = parse_body(body, NOW, 1000)

    assert parsed.events == []
    assert parsed.malformed >= 1


def test_missing_or_bad_timestamp_and_clock_fall_back() -> None:
    for stamp in (None, "yesterday", float("nan"), float("inf"), True):
        event = parse_event(task(timestamp=stamp, clock="x"), NOW + 5, 1000)
        assert isinstance(event, CeleryEvent)
        assert (event.timestamp, event.clock) == (NOW + 5, 0)
    huge_clock = parse_event(task(clock=2**70), NOW, 1000)
    assert isinstance(huge_clock, CeleryEvent) and huge_clock.clock == 0


def test_huge_args_are_cut_with_a_marker_not_rejected() -> None:
    args = "(" + "x" * 1_000_000 + ",)"

    event = parse_event(task(args=args, kwargs={"k": "v" * 5000}), NOW, 1024)

    assert isinstance(event, CeleryEvent)
    stored = event.fields["args"]
    assert stored.startswith("(xxx")
    assert stored.endswith(f"…[truncated by headrace: {len(args)} bytes in all]")
    assert len(stored.encode()) < 1100
    # Not a string: shown as its repr, and cut the same way.
    assert event.fields["kwargs"].startswith("{'k': 'vvv")
    assert "truncated by headrace" in event.fields["kwargs"]


def test_names_and_ids_fit_their_columns() -> None:
    event = parse_event(task(uuid="u" * 300, hostname="h" * 300, name="n" * 300), NOW, 1000)

    assert isinstance(event, CeleryEvent)
    assert len(event.uuid) == len(event.hostname) == len(event.fields["name"]) == 255


def test_nul_characters_are_made_visible() -> None:
    event = parse_event(task(args="a\x00b", name="n\x00", hostname="w\x00"), NOW, 1000)

    assert isinstance(event, CeleryEvent)
    assert event.fields["args"] == "a\\x00b"
    assert event.fields["name"] == "n\\x00"
    assert event.hostname == "w\\x00"
    assert clean_text("plain") == "plain"


@pytest.mark.parametrize(
    ("text", "limit", "kept"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("0123456789AB", 10, "0123456789"),
        # A multi-byte character is never split: "é" is 2 bytes.
        ("éééééé", 5, "éé"),
    ],
)
def test_truncate(text: str, limit: int, kept: str) -> None:
    result = truncate(text, limit)

    if kept == text:
        assert result == text
    else:
        size = len(text.encode())
        assert result == f"{kept}…[truncated by headrace: {size} bytes in all]"


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    low = [backoff_delay(n, cap=60.0, rng=lambda: 0.0) for n in range(1, 10)]
    high = [backoff_delay(n, cap=60.0, rng=lambda: 1.0) for n in range(1, 10)]

    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert backoff_delay(10_000, cap=60.0) <= 60.0


def test_transport_and_log_safe_urls() -> None:
    assert is_amqp("amqp://guest:guest@localhost//")
    assert is_amqp("pyamqp://x")
    assert not is_amqp("redis://localhost:6379/0")
    assert _safe_url("amqp://guest:secret@host:5672//") == "amqp://guest:***@host:5672//"
    assert _safe_url("redis://:secret@host:6379/0") == "redis://***@host:6379/0"
    assert _safe_url("redis://host:6379/0") == "redis://host:6379/0"
