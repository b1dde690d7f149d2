"""The services' questions about flow runs: what is due now, and when the next thing is.

Every query here is served by an index on ``flow_runs`` whose leading column is
``state_type``, so its cost follows the number of runs in the state asked about,
never the size of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import tables as t
from headrace.storage.common import row_dict
from headrace.types import TERMINAL_STATES, StateType, WireDict

_fr = t.flow_runs.c
_tr = t.task_runs.c

UNFINISHED = sorted(s.value for s in StateType if s not in TERMINAL_STATES)

# What a service needs to re-check a run inside its write transaction.
_CHECK_COLUMNS = (
    _fr.id,
    _fr.state_type,
    _fr.state_name,
    _fr.state_timestamp,
    _fr.state,
    _fr.next_scheduled_start_time,
    _fr.deployment_id,
    _fr.infrastructure_pid,
    _fr.parent_task_run_id,
)


def _not_late() -> list[sa.ColumnElement[bool]]:
    """SCHEDULED runs still named ``Scheduled`` (the only ones the reference marks Late)."""
    return [_fr.state_type == StateType.SCHEDULED.value, _fr.state_name == "Scheduled"]


async def run_for_check(conn: AsyncConnection, run_id: str) -> WireDict | None:
    """The state columns of one flow run (None if it is gone)."""
    row = (await conn.execute(sa.select(*_CHECK_COLUMNS).where(_fr.id == run_id))).first()
    return None if row is None else row_dict(row)


async def earliest_scheduled_start(conn: AsyncConnection) -> datetime | None:
    """The earliest ``next_scheduled_start_time`` of a run that could turn Late."""
    stmt = sa.select(sa.func.min(_fr.next_scheduled_start_time)).where(*_not_late())
    return (await conn.execute(stmt)).scalar()


async def scheduled_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> list[str]:
    """Runs still ``Scheduled`` whose start is at or before ``cutoff``, earliest first."""
    stmt = (
        sa.select(_fr.id)
        .where(*_not_late(), _fr.next_scheduled_start_time <= cutoff)
        .order_by(_fr.next_scheduled_start_time, _fr.id)
        .limit(limit)
    )
    return [str(r) for r in (await conn.execute(stmt)).scalars()]


async def paused_runs(conn: AsyncConnection, after_id: str | None, limit: int) -> list[WireDict]:
    """PAUSED runs (``id`` and ``state``), ``limit`` at a time in id order after ``after_id``.

    The pause deadline lives in the state's JSON; paused runs are few, so the
    caller reads it from there rather than from a column of its own.
    """
    stmt = sa.select(_fr.id, _fr.state).where(_fr.state_type == StateType.PAUSED.value)
    if after_id is not None:
        stmt = stmt.where(_fr.id > after_id)
    rows = await conn.execute(stmt.order_by(_fr.id).limit(limit))
    return [row_dict(r) for r in rows]


async def earliest_entered(conn: AsyncConnection, state_type: StateType) -> datetime | None:
    """When the run that has been in ``state_type`` longest entered it."""
    stmt = sa.select(sa.func.min(_fr.state_timestamp)).where(_fr.state_type == state_type.value)
    return (await conn.execute(stmt)).scalar()


async def entered_before(
    conn: AsyncConnection, state_type: StateType, before: datetime, limit: int
) -> list[str]:
    """Runs that entered ``state_type`` at or before ``before``, longest-waiting first."""
    stmt = (
        sa.select(_fr.id)
        .where(_fr.state_type == state_type.value, _fr.state_timestamp <= before)
        .order_by(_fr.state_timestamp, _fr.id)
        .limit(limit)
    )
    return [str(r) for r in (await conn.execute(stmt)).scalars()]


async def entered_since(
    conn: AsyncConnection,
    state_type: StateType,
    since: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[datetime, str]]:
    """``(state_timestamp, id)`` of runs that entered ``state_type`` at or after ``since``.

    Ordered by entry time; ``after`` is the last pair of the previous page.
    """
    stmt = sa.select(_fr.state_timestamp, _fr.id).where(
        _fr.state_type == state_type.value, _fr.state_timestamp >= since
    )
    if after is not None:
        stamp, run_id = after
        stmt = stmt.where(
            sa.or_(
                _fr.state_timestamp > stamp,
                sa.and_(_fr.state_timestamp == stamp, _fr.id > run_id),
            )
        )
    rows = await conn.execute(stmt.order_by(_fr.state_timestamp, _fr.id).limit(limit))
    return [(r.state_timestamp, str(r.id)) for r in rows]


async def unfinished_subflows(conn: AsyncConnection, parent_ids: Sequence[str]) -> list[WireDict]:
    """Subflow runs of ``parent_ids`` (through their tracking task runs) not yet terminal."""
    if not parent_ids:
        return []
    tracking = sa.select(_tr.id).where(_tr.flow_run_id.in_(list(parent_ids)))
    stmt = (
        sa.select(*_CHECK_COLUMNS)
        .where(_fr.parent_task_run_id.in_(tracking), _fr.state_type.in_(UNFINISHED))
        .order_by(_fr.id)
    )
    return [row_dict(r) for r in await conn.execute(stmt)]


async def unfinished_task_runs(conn: AsyncConnection, parent_ids: Sequence[str]) -> list[str]:
    """Task runs of ``parent_ids`` not yet terminal."""
    if not parent_ids:
        return []
    stmt = (
        sa.select(_tr.id)
        .where(_tr.flow_run_id.in_(list(parent_ids)), _tr.state_type.in_(UNFINISHED))
        .order_by(_tr.id)
    )
    return [str(r) for r in (await conn.execute(stmt)).scalars()]


async def task_run_state_type(conn: AsyncConnection, task_run_id: str) -> str | None:
    """The current state type of a task run (None: gone, or no state)."""
    stmt = sa.select(_tr.state_type).where(_tr.id == task_run_id)
    return (await conn.execute(stmt)).scalar()
