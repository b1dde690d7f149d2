"""Flow-run input: keyed values a paused run asks for and receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, NotFound
from headrace.storage import tables as t
from headrace.storage.common import new_id, row_dict
from headrace.types import SetStateStatus, WireDict

if TYPE_CHECKING:
    from headrace.storage.flow_runs import Transition


@dataclass(frozen=True)
class Refusal:
    """A resume refused before any state was proposed."""

    status: SetStateStatus
    state: WireDict | None
    reason: str


_in = t.flow_run_inputs.c


async def _require_run(conn: AsyncConnection, run_id: str) -> None:
    found = await conn.execute(sa.select(t.flow_runs.c.id).where(t.flow_runs.c.id == run_id))
    if found.first() is None:
        raise NotFound(f"Flow run {run_id} not found")


async def create_input(
    conn: AsyncConnection, run_id: str, key: str, value: str, sender: str | None, now: datetime
) -> WireDict:
    await _require_run(conn, run_id)
    exists = await conn.execute(sa.select(_in.id).where(_in.flow_run_id == run_id, _in.key == key))
    if exists.first() is not None:
        raise AlreadyExists(f"Flow run input with key {key!r} already exists")
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "flow_run_id": run_id,
        "key": key,
        "value": value,
        "sender": sender,
    }
    await conn.execute(sa.insert(t.flow_run_inputs), [row])
    return row


async def read_input(conn: AsyncConnection, run_id: str, key: str) -> WireDict:
    row = (
        await conn.execute(
            sa.select(t.flow_run_inputs).where(_in.flow_run_id == run_id, _in.key == key)
        )
    ).first()
    if row is None:
        raise NotFound(f"Flow run input {key!r} not found")
    return row_dict(row)


async def filter_inputs(
    conn: AsyncConnection, run_id: str, prefix: str, limit: int, exclude_keys: list[str]
) -> list[WireDict]:
    stmt = sa.select(t.flow_run_inputs).where(
        _in.flow_run_id == run_id, _in.key.startswith(prefix, autoescape=True)
    )
    if exclude_keys:
        stmt = stmt.where(_in.key.not_in(exclude_keys))
    rows = await conn.execute(stmt.order_by(_in.created, _in.id).limit(limit))
    return [row_dict(r) for r in rows]


async def delete_input(conn: AsyncConnection, run_id: str, key: str) -> None:
    result = await conn.execute(
        sa.delete(t.flow_run_inputs).where(_in.flow_run_id == run_id, _in.key == key)
    )
    if result.rowcount == 0:
        raise NotFound(f"Flow run input {key!r} not found")


async def delete_keys(conn: AsyncConnection, run_id: str, keys: list[str]) -> None:
    """Forget stale values under ``keys`` (a new pause reuses its keyset names)."""
    await conn.execute(
        sa.delete(t.flow_run_inputs).where(_in.flow_run_id == run_id, _in.key.in_(keys))
    )


async def resume(
    conn: AsyncConnection, run_id: str, run_input: WireDict | None, now: datetime
) -> Transition | Refusal:
    """Resume a paused run: validate its input, move it on, store the input.

    A blocking pause goes back to RUNNING; a suspended run (``pause_reschedule``)
    to SCHEDULED "Resuming", to be picked up again by its worker or runner.
    """
    from headrace.storage import flow_runs  # the resume path goes through the rules

    row = await flow_runs.read_flow_run(conn, run_id, now)
    state = row.get("state")
    if not state or state.get("type") != "PAUSED":
        return Refusal(SetStateStatus.ABORT, None, "Cannot resume a flow run that is not paused.")
    details = state.get("state_details") or {}
    keyset = details.get("run_input_keyset")
    if keyset:
        run_input = run_input or {}
        problem = await _check_input(conn, run_id, keyset, run_input)
        if problem:
            return Refusal(SetStateStatus.REJECT, state, problem)
    if details.get("pause_reschedule"):
        proposed = {
            "type": "SCHEDULED",
            "name": "Resuming",
            "state_details": {"scheduled_time": now.isoformat()},
        }
    else:
        proposed = {"type": "RUNNING", "name": "Running", "state_details": {}}
    transition = await flow_runs.set_flow_run_state(conn, run_id, proposed, False, now)
    if keyset and run_input and transition.decision.status is SetStateStatus.ACCEPT:
        value = orjson.dumps(run_input).decode()
        await delete_keys(conn, run_id, [keyset["response"]])
        await create_input(conn, run_id, keyset["response"], value, None, now)
    return transition


async def _check_input(
    conn: AsyncConnection, run_id: str, keyset: WireDict, run_input: WireDict
) -> str | None:
    import jsonschema  # several MB; only a resume with input needs it

    try:
        stored = await read_input(conn, run_id, keyset["schema"])
    except NotFound:
        return "Run input schema not found."
    try:
        schema = orjson.loads(stored["value"])
    except orjson.JSONDecodeError:
        return "Run input schema is not valid JSON."
    try:
        jsonschema.validate(run_input, schema)
    except jsonschema.ValidationError as exc:
        return f"Reason: {exc.message}"
    except jsonschema.SchemaError:
        return "Run input schema is not a valid JSON schema."
    return None
