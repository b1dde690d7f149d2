"""``recorder.fold``: task-run events (PREFECT_API.md §W1.1) folded per run."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.events import recorder

T0 = datetime(2026, 11, 25, 14, 40, 35, 655997, tzinfo=UTC)
FLOW_RUN_ID = "5b0e4a1c-5d3e-4f7e-9a6b-2f1d0c9e8a71"
FLOW_ID = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


def task_event(
    run_id: str,
    state_type: str,
    state_name: str,
    at: datetime,
    *,
    flow_run_id: str | None = FLOW_RUN_ID,
    event_id: str | None = None,
    task_run: dict[str, Any] | None = None,
    message: str = "",
    data: Any = None,
    occurred: datetime | None = None,
) -> dict[str, Any]:
    """A ``prefect.task-run.<state>`` event shaped like the 3.9.1 client's."""
    related = []
    if flow_run_id is not None:
        related.append(
            {
                "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
                "prefect.resource.role": "flow-run",
                "prefect.resource.name": "ochre-kakapo",
            }
        )
    related.append(
        {
            "prefect.resource.id": f"prefect.flow.{FLOW_ID}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": "demo-flow",
        }
    )
    run = {
        "name": "flaky-911",
        "task_key": "flaky-b2d6e3b1",
        "dynamic_key": "0",
        "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 2},
        "tags": [],
        "labels": {},
        "task_inputs": {},
        "run_count": 1,
        "flow_run_run_count": 1,
        "expected_start_time": (T0 - timedelta(seconds=1)).isoformat(),
        "total_run_time": 0.0,
    }
    run.update(task_run or {})
    return {
        "occurred": occurred or at,
        "event": f"prefect.task-run.{state_name}",
        "resource": {
            "prefect.resource.id": f"prefect.task-run.{run_id}",
            "prefect.resource.name": run["name"],
            "prefect.run-count": str(run["run_count"]),
            "prefect.state-message": message,
            "prefect.state-name": state_name,
            "prefect.state-timestamp": at.isoformat(),
            "prefect.state-type": state_type,
            "prefect.orchestration": "client",
        },
        "related": related,
        "payload": {
            "intended": {"from": None, "to": state_type},
            "initial_state": None,
            "validated_state": {
                "type": state_type,
                "name": state_name,
                "message": message,
                "state_details": {},
                "data": data,
            },
            "task_run": run,
        },
        "id": event_id or str(uuid.uuid4()),
        "follows": None,
    }


def lifecycle(
    run_id: str, task_run: dict[str, Any] | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Pending, Running, Completed one second apart, in order."""
    extra = task_run or {}
    started = (T0 + timedelta(seconds=1)).isoformat()
    ended = (T0 + timedelta(seconds=2)).isoformat()
    return [
        task_event(run_id, "PENDING", "Pending", T0, task_run=extra, **kwargs),
        task_event(
            run_id,
            "RUNNING",
            "Running",
            T0 + timedelta(seconds=1),
            task_run={**extra, "start_time": started},
            **kwargs,
        ),
        task_event(
            run_id,
            "COMPLETED",
            "Completed",
            T0 + timedelta(seconds=2),
            task_run={**extra, "start_time": started, "end_time": ended, "total_run_time": 1.0},
            data={"storage_key": "/tmp/result"},
            **kwargs,
        ),
    ]


def new_id() -> str:
    return str(uuid.uuid4())


def test_empty_batch_folds_to_nothing() -> None:
    assert recorder.fold([]) == {}


def test_one_run_lifecycle() -> None:
    run_id = new_id()
    events = lifecycle(run_id)

    folds = recorder.fold(events)

    assert list(folds) == [run_id]
    entry = folds[run_id]
    assert entry.id == run_id
    assert entry.flow_run_id == FLOW_RUN_ID
    assert [s["type"] for s in entry.states] == ["PENDING", "RUNNING", "COMPLETED"]
    assert [s["id"] for s in entry.states] == [e["id"] for e in events]
    assert entry.newest["type"] == "COMPLETED"
    assert entry.newest["timestamp"] == T0 + timedelta(seconds=2)


def test_state_shape_comes_from_labels_and_validated_state() -> None:
    run_id = new_id()
    event = task_event(run_id, "FAILED", "Failed", T0, message="boom", data={"storage_key": "k"})
    event["payload"]["validated_state"]["state_details"] = {"cache_key": "ck"}

    (state,) = recorder.fold([event])[run_id].states

    assert state == {
        "id": event["id"],
        "type": "FAILED",
        "name": "Failed",
        "timestamp": T0,
        "message": "boom",
        "data": {"storage_key": "k"},
        "state_details": {
            "cache_key": "ck",
            "task_run_id": run_id,
            "flow_run_id": FLOW_RUN_ID,
        },
    }


def test_state_falls_back_to_validated_state_and_occurred() -> None:
    run_id = new_id()
    event = task_event(run_id, "RUNNING", "Retrying", T0, occurred=T0 + timedelta(minutes=1))
    for label in ("prefect.state-type", "prefect.state-name", "prefect.state-timestamp"):
        del event["resource"][label]

    (state,) = recorder.fold([event])[run_id].states

    assert (state["type"], state["name"]) == ("RUNNING", "Retrying")
    assert state["timestamp"] == T0 + timedelta(minutes=1)


def test_iso_string_occurred_is_parsed() -> None:
    run_id = new_id()
    event = task_event(run_id, "RUNNING", "Running", T0)
    del event["resource"]["prefect.state-timestamp"]
    event["occurred"] = "2026-11-25T14:40:35.655997Z"

    (state,) = recorder.fold([event])[run_id].states

    assert state["timestamp"] == T0


def test_events_group_by_run() -> None:
    a, b = new_id(), new_id()
    events = lifecycle(a) + lifecycle(b, flow_run_id="11111111-2222-4333-8444-555555555555")
    # Interleave them.
    events = [events[0], events[3], events[1], events[4], events[2], events[5]]

    folds = recorder.fold(events)

    assert set(folds) == {a, b}
    assert folds[a].flow_run_id == FLOW_RUN_ID
    assert folds[b].flow_run_id == "11111111-2222-4333-8444-555555555555"
    assert [len(f.states) for f in folds.values()] == [3, 3]
    assert all(s["state_details"]["task_run_id"] == b for s in folds[b].states)


def test_flow_run_id_only_from_the_flow_run_role() -> None:
    run_id = new_id()
    event = task_event(run_id, "RUNNING", "Running", T0, flow_run_id=None)
    # A flow-run resource in another role is not the enclosing flow run.
    event["related"].append(
        {"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}", "prefect.resource.role": "x"}
    )

    assert recorder.fold([event])[run_id].flow_run_id is None


def test_fields_come_from_payload_task_run_with_times_parsed() -> None:
    run_id = new_id()
    events = lifecycle(run_id, task_run={"cache_key": "ck", "tags": ["a"], "labels": {"k": "v"}})

    fields = recorder.fold(events)[run_id].fields

    assert fields["name"] == "flaky-911"
    assert fields["task_key"] == "flaky-b2d6e3b1"
    assert fields["dynamic_key"] == "0"
    assert fields["cache_key"] == "ck"
    assert fields["tags"] == ["a"]
    assert fields["labels"] == {"k": "v"}
    assert fields["expected_start_time"] == T0 - timedelta(seconds=1)
    assert fields["start_time"] == T0 + timedelta(seconds=1)
    assert fields["end_time"] == T0 + timedelta(seconds=2)
    assert fields["total_run_time"] == 1.0
    assert isinstance(fields["start_time"], datetime)


def test_name_falls_back_to_the_resource_name() -> None:
    run_id = new_id()
    event = task_event(run_id, "PENDING", "Pending", T0)
    del event["payload"]["task_run"]["name"]
    event["resource"]["prefect.resource.name"] = "from-label"

    assert recorder.fold([event])[run_id].fields["name"] == "from-label"


def test_fields_from_the_newest_event_not_the_last_delivered() -> None:
    run_id = new_id()
    pending, running, completed = lifecycle(run_id)

    folds = recorder.fold([completed, running, pending])

    entry = folds[run_id]
    assert entry.fields["end_time"] == T0 + timedelta(seconds=2)
    assert entry.fields["total_run_time"] == 1.0
    assert entry.newest["id"] == completed["id"]
    # Every state is kept, in delivery order; the newest is chosen by timestamp.
    assert [s["type"] for s in entry.states] == ["COMPLETED", "RUNNING", "PENDING"]


def test_out_of_order_fields_equal_in_order_fields() -> None:
    run_id = new_id()
    events = lifecycle(run_id)

    in_order = recorder.fold(events)[run_id]
    shuffled = recorder.fold([events[1], events[2], events[0]])[run_id]

    assert shuffled.fields == in_order.fields
    assert shuffled.newest == in_order.newest
    assert sorted(s["id"] for s in shuffled.states) == sorted(s["id"] for s in in_order.states)


def test_same_timestamp_ties_break_on_id() -> None:
    run_id = new_id()
    low = task_event(
        run_id, "RUNNING", "Running", T0, event_id="00000000-0000-4000-8000-000000000001"
    )
    high = task_event(
        run_id,
        "COMPLETED",
        "Completed",
        T0,
        event_id="00000000-0000-4000-8000-000000000002",
        task_run={"total_run_time": 9.0},
    )

    for order in ([low, high], [high, low]):
        entry = recorder.fold(order)[run_id]
        assert entry.newest["id"] == high["id"]
        assert entry.fields["total_run_time"] == 9.0


def test_duplicate_delivery_keeps_identical_state_ids() -> None:
    run_id = new_id()
    events = lifecycle(run_id)

    entry = recorder.fold(events + [copy.deepcopy(e) for e in events])[run_id]

    assert {s["id"] for s in entry.states} == {e["id"] for e in events}
    assert entry.newest["type"] == "COMPLETED"
    assert entry.fields == recorder.fold(events)[run_id].fields


def test_non_task_run_events_are_ignored() -> None:
    run_id = new_id()
    heartbeat = {
        "occurred": T0,
        "event": "prefect.flow-run.heartbeat",
        "resource": {"prefect.resource.id": f"prefect.flow-run.{FLOW_RUN_ID}"},
        "related": [],
        "payload": {},
        "id": new_id(),
    }
    # Named like a task-run event but about another kind of resource.
    impostor = task_event(run_id, "RUNNING", "Running", T0)
    impostor["resource"]["prefect.resource.id"] = f"prefect.flow-run.{FLOW_RUN_ID}"
    # About a task run but not a task-run event.
    custom = task_event(run_id, "RUNNING", "Running", T0)
    custom["event"] = "my.custom.event"

    assert recorder.fold([heartbeat, impostor, custom]) == {}
    assert list(recorder.fold([heartbeat, *lifecycle(run_id), custom])) == [run_id]


def test_events_without_a_state_type_are_dropped() -> None:
    run_id = new_id()
    event = task_event(run_id, "RUNNING", "Running", T0)
    del event["resource"]["prefect.state-type"]
    event["payload"]["validated_state"] = None

    assert recorder.fold([event]) == {}


def test_background_task_has_no_flow_run() -> None:
    run_id = new_id()
    events = lifecycle(run_id, flow_run_id=None)

    entry = recorder.fold(events)[run_id]

    assert entry.flow_run_id is None
    assert len(entry.states) == 3
    for state in entry.states:
        assert state["state_details"]["task_run_id"] == run_id
        assert "flow_run_id" not in state["state_details"]


def test_task_run_id_in_details_is_the_resource_id() -> None:
    run_id = new_id()
    event = task_event(run_id, "RUNNING", "Running", T0)
    event["payload"]["validated_state"]["state_details"] = {"task_run_id": new_id()}

    (state,) = recorder.fold([event])[run_id].states

    assert state["state_details"]["task_run_id"] == run_id


def test_input_events_are_not_modified() -> None:
    events = lifecycle(new_id())
    before = copy.deepcopy(events)

    recorder.fold(events)

    assert events == before
