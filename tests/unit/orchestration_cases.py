"""Vocabulary shared by the flow-run and task-run orchestration tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from headrace.orchestration import Decision
from headrace.orchestration.states import wire_time
from headrace.types import SetStateStatus, WireDict

NOW = datetime(2026, 11, 25, 14, 54, 37, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=10)  # when the current state was entered
STARTED = NOW - timedelta(seconds=60)
RESULT = {"storage_key": "/results/abc", "serializer": {"type": "pickle"}}
UNPERSISTED = {"type": "unpersisted"}

ACCEPT = SetStateStatus.ACCEPT
REJECT = SetStateStatus.REJECT
WAIT = SetStateStatus.WAIT
ABORT = SetStateStatus.ABORT
ACCEPTED = {"type": "accept_details"}


def rejected(reason: str) -> WireDict:
    return {"type": "reject_details", "reason": reason}


def aborted(reason: str) -> WireDict:
    return {"type": "abort_details", "reason": reason}


def waited(seconds: int) -> WireDict:
    reason = "Scheduled time is in the future"
    return {"type": "wait_details", "delay_seconds": seconds, "reason": reason}


def at(seconds: float) -> str:
    """A wire datetime ``seconds`` from NOW."""
    return wire_time(NOW + timedelta(seconds=seconds))


def stored(type_: str, name: str | None = None, *, data: Any = None, **details: Any) -> WireDict:
    """A current state as storage returns it."""
    return {
        "id": "state-0",
        "type": type_,
        "name": name or type_.capitalize(),
        "timestamp": EARLIER,
        "message": None,
        "data": data,
        "state_details": details,
    }


def propose(type_: str, name: str | None = None, *, data: Any = None, **details: Any) -> WireDict:
    """A StateCreate as the client sends it."""
    body: WireDict = {"type": type_, "message": None, "data": data, "state_details": details}
    if name is not None:
        body["name"] = name
    return body


@dataclass
class Case:
    id: str
    current: WireDict | None
    proposed: WireDict
    status: SetStateStatus
    details: WireDict
    state: tuple[str, str] | None
    write: bool
    run_update: WireDict = field(default_factory=dict)
    run: WireDict = field(default_factory=dict)
    force: bool = False
    state_details: WireDict = field(default_factory=dict)


def check(case: Case, decision: Decision) -> None:
    assert decision.status is case.status
    assert decision.details == case.details
    assert decision.write_state is case.write
    if case.state is None:
        assert decision.state is None
    else:
        assert decision.state is not None
        assert (decision.state["type"], decision.state["name"]) == case.state
        for key, value in case.state_details.items():
            assert decision.state["state_details"][key] == value, key
    assert decision.run_update == case.run_update
