"""Events headrace makes itself, published only after the change they describe commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from headrace.storage.common import new_id
from headrace.types import WireDict


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _brief(state: WireDict | None) -> WireDict | None:
    if not state:
        return None
    return {k: state.get(k) for k in ("type", "name", "message", "state_details")}


def flow_run_state_event(
    run: WireDict, state: WireDict, previous: WireDict | None, flow_name: str, now: datetime
) -> WireDict:
    """``prefect.flow-run.<StateName>`` for an accepted flow-run transition."""
    resource = {
        "prefect.resource.id": f"prefect.flow-run.{run['id']}",
        "prefect.resource.name": run["name"],
        "prefect.run-count": str(run.get("run_count") or 0),
        "prefect.state-message": state.get("message") or "",
        "prefect.state-name": state["name"],
        "prefect.state-timestamp": _iso(state["timestamp"]),
        "prefect.state-type": state["type"],
    }
    related = [
        {
            "prefect.resource.id": f"prefect.flow.{run['flow_id']}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow_name,
        }
    ]
    if run.get("deployment_id"):
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{run['deployment_id']}",
                "prefect.resource.role": "deployment",
            }
        )
    for tag in run.get("tags") or []:
        related.append(
            {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        )
    return {
        "id": new_id(),
        "occurred": state["timestamp"],
        "received": now,
        "event": f"prefect.flow-run.{state['name']}",
        "resource": resource,
        "related": related,
        "payload": {
            "intended": {
                "from": (previous or {}).get("type"),
                "to": state["type"],
            },
            "initial_state": _brief(previous),
            "validated_state": _brief(state),
        },
        "follows": None,
    }
