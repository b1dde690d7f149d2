"""The consumer thread's batching and body decoding (no broker: fake messages)."""

from __future__ import annotations

from typing import Any

from headrace.celery_monitor.consumer import (
    BATCH_EVENTS,
    FLUSH_SECONDS,
    HEARTBEAT_FLUSH_SECONDS,
    Batch,
    BrokerConsumer,
    decode_body,
)
from headrace.celery_monitor.normalize import CeleryEvent

NOW = 1_700_000_000.0


class FakeMessage:
    """What the consumer reads of a kombu message."""

    def __init__(self, body: bytes, content_type: str = "application/json", **headers: Any):
        self.body, self.content_type, self.headers = body, content_type, headers
        self.delivery_tag = 1
        self.decoded_by_kombu = False

    def decode(self) -> Any:
        self.decoded_by_kombu = True
        return {"via": "kombu"}


def event(kind: str = "task-received", uuid: str = "t1") -> CeleryEvent:
    group, _, subject = kind.partition("-")
    return CeleryEvent(group, subject, "w1@h", NOW, NOW, uuid=uuid if group == "task" else "")


def consumer(delivered: list[Batch | None]) -> BrokerConsumer:
    return BrokerConsumer(
        "redis://127.0.0.1:1/0",
        deliver=delivered.append,
        capacity=10,
        max_field_bytes=1000,
        queue_name="q",
        prefetch=10,
        reconnect_cap=1.0,
        enable_events=False,
    )


def test_plain_json_is_read_without_kombu() -> None:
    message = FakeMessage(b'{"type": "task-sent", "uuid": "t1"}')
    assert decode_body(message) == {"type": "task-sent", "uuid": "t1"}
    assert not message.decoded_by_kombu


def test_what_orjson_refuses_or_other_content_goes_through_kombu() -> None:
    for message in (
        FakeMessage(b'{"runtime": NaN}'),  # Python's json writes NaN; orjson refuses it
        FakeMessage(b"\x80\x03}q", content_type="application/x-python-serialize"),
        FakeMessage(b"x\x9c", compression="application/x-gzip"),
    ):
        assert decode_body(message) == {"via": "kombu"}
        assert message.decoded_by_kombu


def test_a_full_batch_is_handed_over_while_kombu_is_still_reading() -> None:
    delivered: list[Batch | None] = []
    reader = consumer(delivered)
    events = [event(uuid=f"t{i}") for i in range(BATCH_EVENTS - 1)]
    reader._add(FakeMessage(b""), events, 0, 0)
    assert delivered == []
    reader._add(FakeMessage(b""), [event(uuid="last")], 0, 0)
    (batch,) = delivered
    assert batch is not None and len(batch.events) == BATCH_EVENTS
    assert reader._pending.messages == 0


def test_heartbeats_alone_wait_longer_than_task_events() -> None:
    beats = Batch(started=0.0)
    beats.events.append(event("worker-heartbeat"))
    assert not beats.due(FLUSH_SECONDS)
    assert beats.due(HEARTBEAT_FLUSH_SECONDS)

    delivered: list[Batch | None] = []
    reader = consumer(delivered)
    reader._add(FakeMessage(b""), [event("worker-heartbeat")], 0, 0)
    assert reader._pending.heartbeats_only
    reader._add(FakeMessage(b""), [event("task-started")], 0, 0)
    assert not reader._pending.heartbeats_only
    # Just past the wait: ``started + FLUSH_SECONDS - started`` can round below it.
    assert reader._pending.due(reader._pending.started + FLUSH_SECONDS * 1.01)
