"""Task-run recorder: fold ``prefect.task-run.*`` events into task-run rows and states.

Pure functions; storage applies the result. Correct under duplicate and
out-of-order delivery: each event becomes a state whose id is the event id
(duplicates collapse on insert), and a run's current state and fields come from
its newest state by timestamp, never from the last event to arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.types import WireDict

TASK_RUN_PREFIX = "prefect.task-run."
_RUN_FIELDS = (
    "name",
    "task_key",
    "dynamic_key",
    "cache_key",
    "cache_expiration",
    "task_version",
    "empirical_policy",
    "tags",
    "labels",
    "task_inputs",
    "run_count",
    "flow_run_run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
)
_TIME_FIELDS = frozenset(
    {
        "cache_expiration",
        "expected_start_time",
        "next_scheduled_start_time",
        "start_time",
        "end_time",
    }
)


@dataclass
class TaskRunFold:
    """Everything a batch of events says about one task run."""

    id: str
    flow_run_id: str | None
    fields: WireDict = field(default_factory=dict)
    states: list[WireDict] = field(default_factory=list)

    @property
    def newest(self) -> WireDict:
        return max(self.states, key=lambda s: (s["timestamp"], s["id"]))


def is_task_run_event(event: WireDict) -> bool:
    name = event.get("event", "")
    resource_id = event.get("resource", {}).get("prefect.resource.id", "")
    return name.startswith(TASK_RUN_PREFIX) and resource_id.startswith(TASK_RUN_PREFIX)


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    text = str(value).replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state(event: WireDict, run_id: str, flow_run_id: str | None) -> WireDict | None:
    resource = event["resource"]
    validated = (event.get("payload") or {}).get("validated_state") or {}
    state_type = resource.get("prefect.state-type") or validated.get("type")
    if not state_type:
        return None
    details = dict(validated.get("state_details") or {})
    details["task_run_id"] = run_id
    if flow_run_id:
        details.setdefault("flow_run_id", flow_run_id)
    timestamp = _time(resource.get("prefect.state-timestamp")) or _time(event["occurred"])
    return {
        "id": event["id"],
        "type": state_type,
        "name": resource.get("prefect.state-name") or validated.get("name") or state_type.title(),
        "timestamp": timestamp,
        "message": resource.get("prefect.state-message") or validated.get("message"),
        "data": validated.get("data"),
        "state_details": details,
    }


def _run_fields(event: WireDict) -> WireDict:
    payload_run = (event.get("payload") or {}).get("task_run") or {}
    fields = {k: payload_run[k] for k in _RUN_FIELDS if k in payload_run}
    for key in _TIME_FIELDS & fields.keys():
        fields[key] = _time(fields[key])
    if "name" not in fields and event["resource"].get("prefect.resource.name"):
        fields["name"] = event["resource"]["prefect.resource.name"]
    return fields


def fold(events: list[WireDict]) -> dict[str, TaskRunFold]:
    """Group task-run events by run; fields come from each run's newest event."""
    folds: dict[str, TaskRunFold] = {}
    newest_seen: dict[str, tuple[Any, str]] = {}
    for event in events:
        if not is_task_run_event(event):
            continue
        run_id = event["resource"]["prefect.resource.id"][len(TASK_RUN_PREFIX) :]
        flow_run_id = next(
            (
                r["prefect.resource.id"].removeprefix("prefect.flow-run.")
                for r in event.get("related") or []
                if r.get("prefect.resource.role") == "flow-run"
            ),
            None,
        )
        entry = folds.setdefault(run_id, TaskRunFold(run_id, flow_run_id))
        state = _state(event, run_id, flow_run_id)
        if state is None:
            continue
        entry.states.append(state)
        order = (state["timestamp"], state["id"])
        if run_id not in newest_seen or order >= newest_seen[run_id]:
            newest_seen[run_id] = order
            entry.fields.update(_run_fields(event))
            entry.flow_run_id = entry.flow_run_id or flow_run_id
    return {k: v for k, v in folds.items() if v.states}
