"""Flows: create-or-get by name, read, filter, delete."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import NotFound
from headrace.storage import dialect as dialects
from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, now, page, row_dict
from headrace.types import WireDict


async def ensure_flow(
    conn: AsyncConnection, name: str, tags: list[str], labels: dict[str, Any]
) -> tuple[WireDict, bool]:
    """Create the flow named ``name`` unless it exists. Returns (flow, created)."""
    stamp = now()
    stmt = dialects.insert_ignore(conn.dialect.name, t.flows, "name").values(
        id=new_id(), created=stamp, updated=stamp, name=name, tags=tags, labels=labels
    )
    result = await conn.execute(stmt)
    row = (await conn.execute(sa.select(t.flows).where(t.flows.c.name == name))).one()
    return row_dict(row), result.rowcount == 1


async def read_flow(conn: AsyncConnection, flow_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.flows).where(t.flows.c.id == flow_id))).first()
    if row is None:
        raise NotFound(f"Flow {flow_id} not found")
    return row_dict(row)


async def read_flow_by_name(conn: AsyncConnection, name: str) -> WireDict:
    row = (await conn.execute(sa.select(t.flows).where(t.flows.c.name == name))).first()
    if row is None:
        raise NotFound(f"Flow named {name!r} not found")
    return row_dict(row)


def flow_where(body: dict[str, Any], dialect: str) -> list[Any]:
    """WHERE clauses for /flows/filter and /flows/count bodies."""
    from headrace.storage import flow_runs  # the two resources filter each other

    clauses = []
    own = filters.where(filters.FLOW_FIELDS, body.get("flows"), dialect, "flows")
    if own is not None:
        clauses.append(own)
    run_clauses = flow_runs.flow_run_where({**body, "flows": None}, dialect)
    if run_clauses:
        runs = sa.select(t.flow_runs.c.flow_id).where(*run_clauses)
        clauses.append(t.flows.c.id.in_(runs))
    return clauses


async def filter_flows(
    conn: AsyncConnection, body: dict[str, Any], limit: int | None, offset: int | None
) -> list[WireDict]:
    dialect = conn.dialect.name
    order = filters.sort_clause(filters.FLOW_SORTS, body.get("sort"), "NAME_ASC")
    stmt = sa.select(t.flows).where(*flow_where(body, dialect)).order_by(*order)
    rows = await conn.execute(page(stmt, limit, offset))
    return [row_dict(r) for r in rows]


async def count_flows(conn: AsyncConnection, body: dict[str, Any]) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.flows)
    stmt = stmt.where(*flow_where(body, conn.dialect.name))
    return int((await conn.execute(stmt)).scalar_one())


async def delete_flow(conn: AsyncConnection, flow_id: str) -> None:
    result = await conn.execute(sa.delete(t.flows).where(t.flows.c.id == flow_id))
    if result.rowcount == 0:
        raise NotFound(f"Flow {flow_id} not found")
