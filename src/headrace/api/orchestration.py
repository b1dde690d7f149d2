"""The OrchestrationResult answer shared by both set_state routes."""

from __future__ import annotations

from starlette.responses import Response

from headrace.api.responses import JSON
from headrace.orchestration import Decision
from headrace.types import SetStateStatus, WireDict


def result(decision: Decision, written: WireDict | None) -> Response:
    """201 when a state row was written (as the reference answers), else 200."""
    state = written if written is not None else decision.state
    body = {"state": state, "status": decision.status.value, "details": decision.details}
    wrote = written is not None and decision.status in (
        SetStateStatus.ACCEPT,
        SetStateStatus.REJECT,
    )
    return JSON(body, status_code=201 if wrote else 200)
