"""The scheduler's queries: which schedules need runs, and materialising them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import tables as t
from headrace.types import WireDict

_ds = t.deployment_schedules.c
_dp = t.deployments.c


def _live() -> list[Any]:
    """Schedules that produce runs: active, of a deployment that is not paused."""
    return [_ds.active.is_(True), _dp.paused.is_(False)]


async def schedules_due(conn: AsyncConnection, horizon_end: datetime, limit: int) -> list[WireDict]:
    """Live schedules whose runs do not yet reach ``horizon_end``, least covered first."""
    stmt = (
        sa.select(
            _ds.id,
            _ds.deployment_id,
            _ds.schedule,
            _ds.parameters,
            _ds.max_scheduled_runs,
            _ds.cursor,
        )
        .join(t.deployments, _dp.id == _ds.deployment_id)
        .where(*_live(), sa.or_(_ds.cursor.is_(None), _ds.cursor < horizon_end))
        .order_by(_ds.cursor.is_not(None), _ds.cursor)
        .limit(limit)
    )
    return [dict(r._mapping) for r in await conn.execute(stmt)]


async def earliest_cursor(conn: AsyncConnection) -> datetime | None:
    """The least advanced cursor of any live schedule (None: nothing scheduled)."""
    stmt = (
        sa.select(sa.func.min(_ds.cursor))
        .join(t.deployments, _dp.id == _ds.deployment_id)
        .where(*_live())
    )
    return (await conn.execute(stmt)).scalar()


async def advance_cursor(conn: AsyncConnection, schedule_id: str, cursor: datetime) -> None:
    await conn.execute(
        sa.update(t.deployment_schedules).where(_ds.id == schedule_id).values(cursor=cursor)
    )


async def advance_cursors(conn: AsyncConnection, cursors: dict[str, datetime]) -> None:
    """Move many schedules' cursors in one statement (``{schedule id: cursor}``)."""
    if not cursors:
        return
    stmt = (
        sa.update(t.deployment_schedules)
        .where(_ds.id == sa.bindparam("schedule_id"))
        .values(cursor=sa.bindparam("new_cursor"))
    )
    await conn.execute(
        stmt, [{"schedule_id": sid, "new_cursor": cursor} for sid, cursor in cursors.items()]
    )
