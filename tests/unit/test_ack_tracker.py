"""AckTracker bookkeeping, without a server."""

from __future__ import annotations

import pytest
from wsproto import events

from headrace.events.durable_ws import ACK_EXTENSION, AckTracker, ack_tracker


def make_tracker() -> tuple[AckTracker, list[bytes]]:
    sent: list[bytes] = []
    tracker = AckTracker(lambda ping: sent.append(bytes(ping.payload)))
    return tracker, sent


def deliver(tracker: AckTracker, count: int) -> None:
    for _ in range(count):
        tracker.message_delivered()


def test_disabled_tracker_never_holds() -> None:
    tracker, _ = make_tracker()
    deliver(tracker, 3)
    assert not tracker.must_hold()


def test_enabled_tracker_holds_until_delivered_messages_are_confirmed() -> None:
    tracker, sent = make_tracker()
    assert not tracker.must_hold()
    tracker.enable()
    assert not tracker.must_hold()

    deliver(tracker, 2)
    assert tracker.must_hold()
    tracker.hold(events.Ping(b"a"))
    deliver(tracker, 1)
    tracker.hold(events.Ping(b"b"))

    tracker.confirm(1)
    assert sent == []
    tracker.confirm(2)
    assert sent == [b"a"]
    tracker.confirm(3)
    assert sent == [b"a", b"b"]
    assert not tracker.must_hold()


def test_messages_before_enable_still_count() -> None:
    tracker, _ = make_tracker()
    deliver(tracker, 2)
    tracker.enable()
    assert tracker.must_hold()
    tracker.confirm(2)
    assert not tracker.must_hold()


def test_confirm_is_monotonic() -> None:
    tracker, sent = make_tracker()
    tracker.enable()
    deliver(tracker, 3)
    tracker.confirm(3)
    tracker.confirm(1)
    assert tracker.confirmed == 3
    assert sent == []


def test_confirm_beyond_delivered_is_refused() -> None:
    tracker, _ = make_tracker()
    deliver(tracker, 2)
    with pytest.raises(ValueError, match="only 2 were delivered"):
        tracker.confirm(3)
    assert tracker.confirmed == 0


def test_dropped_pongs_are_never_sent() -> None:
    tracker, sent = make_tracker()
    tracker.enable()
    deliver(tracker, 1)
    tracker.hold(events.Ping(b"a"))
    tracker.drop_held()
    tracker.confirm(1)
    assert sent == []
    assert tracker.held == 0


def test_ack_tracker_lookup() -> None:
    tracker, _ = make_tracker()
    assert ack_tracker({"type": "websocket", "extensions": {ACK_EXTENSION: tracker}}) is tracker
    assert ack_tracker({"type": "websocket", "extensions": {}}) is None
    assert ack_tracker({"type": "websocket"}) is None
