"""Logs: batched insert, filter, retention."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict


async def insert_logs(conn: AsyncConnection, logs: list[WireDict], now: datetime) -> None:
    """Insert validated LogCreate dicts in one multi-row statement."""
    if not logs:
        return
    rows = [
        {
            "id": new_id(),
            "created": now,
            "name": log["name"],
            "level": log["level"],
            "message": log["message"],
            "timestamp": log["timestamp"],
            "flow_run_id": log.get("flow_run_id"),
            "task_run_id": log.get("task_run_id"),
            "worker_id": log.get("worker_id"),
        }
        for log in logs
    ]
    await conn.execute(sa.insert(t.logs), rows)


async def filter_logs(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    order = filters.sort_clause(filters.LOG_SORTS, body.get("sort"), "TIMESTAMP_ASC")
    clause = filters.where(filters.LOG_FIELDS, body.get("logs"), conn.dialect.name, "logs")
    stmt = sa.select(t.logs)
    if clause is not None:
        stmt = stmt.where(clause)
    rows = await conn.execute(page(stmt.order_by(*order), limit, offset))
    return [{**row_dict(r), "updated": r.created} for r in rows]


async def trim_logs(conn: AsyncConnection, before: datetime, chunk: int) -> int:
    """Delete up to ``chunk`` logs older than ``before``; returns how many went."""
    victims = sa.select(t.logs.c.id).where(t.logs.c.timestamp < before).limit(chunk)
    result = await conn.execute(sa.delete(t.logs).where(t.logs.c.id.in_(victims)))
    return result.rowcount or 0
