"""Block types: the named kinds of block (``secret``, ``local-file-system``, user classes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, NotFound
from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

UPDATABLE = ("logo_url", "documentation_url", "description", "code_example")
"""What ``PATCH /block_types/{id}`` may change (``BlockTypeUpdate``)."""

_bt = t.block_types.c

FIELDS: dict[str, filters.Compiler] = {
    "name": filters.field_str(_bt.name),
    "slug": filters.field_str(_bt.slug),
}


async def create_block_type(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Insert a block type; a used slug raises AlreadyExists."""
    row: WireDict = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "name": body["name"],
        "slug": body["slug"],
        **{k: body.get(k) for k in UPDATABLE},
        "is_protected": False,
    }
    taken = AlreadyExists(f'Block type with slug "{row["slug"]}" already exists')
    if (await conn.execute(sa.select(_bt.id).where(_bt.slug == row["slug"]))).first():
        raise taken
    try:
        await conn.execute(sa.insert(t.block_types), [row])
    except IntegrityError:  # a concurrent create on Postgres
        raise taken from None
    return row


async def _read(conn: AsyncConnection, clause: Any) -> WireDict:
    row = (await conn.execute(sa.select(t.block_types).where(clause))).first()
    if row is None:
        raise NotFound("Block type not found")
    return row_dict(row)


async def read_block_type(conn: AsyncConnection, block_type_id: str) -> WireDict:
    return await _read(conn, _bt.id == block_type_id)


async def read_block_type_by_slug(conn: AsyncConnection, slug: str) -> WireDict:
    return await _read(conn, _bt.slug == slug)


async def read_many(conn: AsyncConnection, ids: set[str]) -> dict[str, WireDict]:
    """Block types by id (for embedding in schemas and documents)."""
    if not ids:
        return {}
    rows = await conn.execute(sa.select(t.block_types).where(_bt.id.in_(ids)))
    return {str(r.id): row_dict(r) for r in rows}


async def update_block_type(
    conn: AsyncConnection, block_type_id: str, changes: WireDict, now: datetime
) -> None:
    """Apply the metadata fields of a ``BlockTypeUpdate``; unchanged values write nothing."""
    current = await read_block_type(conn, block_type_id)
    values = {k: changes[k] for k in UPDATABLE if k in changes and changes[k] != current[k]}
    if values:
        await conn.execute(
            sa.update(t.block_types).where(_bt.id == block_type_id).values(updated=now, **values)
        )


async def delete_block_type(conn: AsyncConnection, block_type_id: str) -> None:
    """Delete a block type with its schemas and documents (the reference cascades too)."""
    await read_block_type(conn, block_type_id)
    for table in (t.block_documents, t.block_schemas):
        await conn.execute(sa.delete(table).where(table.c.block_type_id == block_type_id))
    await conn.execute(sa.delete(t.block_types).where(_bt.id == block_type_id))


def block_type_where(body: WireDict, dialect: str) -> list[Any]:
    """Clauses on block types for a body's ``block_types`` and ``block_schemas`` filters."""
    from headrace.storage import block_schemas  # schemas embed their block type

    clauses: list[Any] = []
    own = filters.where(FIELDS, body.get("block_types"), dialect, "block_types")
    if own is not None:
        clauses.append(own)
    schema_where = block_schemas.schema_where(body, dialect)
    if schema_where:
        having = sa.select(t.block_schemas.c.block_type_id).where(*schema_where)
        clauses.append(_bt.id.in_(having))
    return clauses


async def filter_block_types(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    stmt = sa.select(t.block_types).where(*block_type_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(_bt.name, _bt.id), limit, offset))
    return [row_dict(r) for r in rows]
