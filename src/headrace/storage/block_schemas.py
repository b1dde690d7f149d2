"""Block schemas: versions of a block type's fields, identified by checksum."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace import blocks
from headrace.errors import AlreadyExists, NotFound
from headrace.storage import block_types, filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

DEFAULT_VERSION = "non-versioned"
"""A schema's version when the client names none (the reference's default)."""

_bs = t.block_schemas.c

FIELDS: dict[str, filters.Compiler] = {
    "id": filters.field_uuid(_bs.id),
    "block_type_id": filters.field_uuid(_bs.block_type_id),
    "block_capabilities": filters.field_tags(_bs.capabilities),
    "version": filters.field_str(_bs.version),
}


async def wire(conn: AsyncConnection, rows: list[WireDict]) -> list[WireDict]:
    """Schema rows as ``BlockSchema`` objects, each with its ``block_type`` embedded."""
    types = await block_types.read_many(conn, {str(r["block_type_id"]) for r in rows})
    return [{**r, "block_type": types.get(str(r["block_type_id"]))} for r in rows]


async def create_block_schema(
    conn: AsyncConnection, body: WireDict, now: datetime
) -> tuple[WireDict, bool]:
    """Store a schema unless one with the same checksum and version exists.

    Returns:
        The schema, and whether it was created (False: it existed already; the
        reference answers 200 then, so concurrent ``save`` calls of one class agree).

    Raises:
        NotFound: the block type does not exist.
    """
    await block_types.read_block_type(conn, body["block_type_id"])
    fields = body.get("fields") or {}
    checksum = blocks.schema_checksum(fields)
    version = body.get("version") or DEFAULT_VERSION
    existing = await _by_checksum(conn, checksum, version)
    if existing is not None:
        return (await wire(conn, [existing]))[0], False
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "checksum": checksum,
        "fields": fields,
        "capabilities": body.get("capabilities") or [],
        "version": version,
        "block_type_id": body["block_type_id"],
    }
    try:
        await conn.execute(sa.insert(t.block_schemas), [row])
    except IntegrityError:  # a concurrent create on Postgres
        raise AlreadyExists(f"Block schema {checksum} version {version} already exists") from None
    return (await wire(conn, [row]))[0], True


async def _by_checksum(conn: AsyncConnection, checksum: str, version: str | None) -> Any:
    stmt = sa.select(t.block_schemas).where(_bs.checksum == checksum)
    if version is not None:
        stmt = stmt.where(_bs.version == version)
    row = (await conn.execute(stmt.order_by(_bs.created.desc()).limit(1))).first()
    return None if row is None else row_dict(row)


async def read_block_schema_by_checksum(
    conn: AsyncConnection, checksum: str, version: str | None
) -> WireDict:
    """The schema with ``checksum`` (and ``version`` when given; else the newest)."""
    found = await _by_checksum(conn, checksum, version)
    if found is None:
        raise NotFound("Block schema not found")
    return (await wire(conn, [found]))[0]


async def read_block_schema(conn: AsyncConnection, schema_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.block_schemas).where(_bs.id == schema_id))).first()
    if row is None:
        raise NotFound("Block schema not found")
    return (await wire(conn, [row_dict(row)]))[0]


async def read_many(conn: AsyncConnection, ids: set[str]) -> dict[str, WireDict]:
    """Schemas (with their block types) by id."""
    if not ids:
        return {}
    rows = await conn.execute(sa.select(t.block_schemas).where(_bs.id.in_(ids)))
    return {str(r["id"]): r for r in await wire(conn, [row_dict(r) for r in rows])}


def schema_where(body: WireDict, dialect: str) -> list[Any]:
    own = filters.where(FIELDS, body.get("block_schemas"), dialect, "block_schemas")
    return [] if own is None else [own]


async def filter_block_schemas(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    """Schemas matching the body's ``block_schemas`` filter, newest first."""
    stmt = sa.select(t.block_schemas).where(*schema_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(_bs.created.desc(), _bs.id), limit, offset))
    return await wire(conn, [row_dict(r) for r in rows])


async def delete_block_schema(conn: AsyncConnection, schema_id: str) -> None:
    """Delete a schema and the documents written with it (the reference cascades too)."""
    await read_block_schema(conn, schema_id)
    docs = t.block_documents
    await conn.execute(sa.delete(docs).where(docs.c.block_schema_id == schema_id))
    await conn.execute(sa.delete(t.block_schemas).where(_bs.id == schema_id))


async def read_capabilities(conn: AsyncConnection) -> list[str]:
    """Every capability any stored schema declares, sorted."""
    found: set[str] = set()
    for (capabilities,) in await conn.execute(sa.select(_bs.capabilities)):
        found.update(capabilities or [])
    return sorted(found)
