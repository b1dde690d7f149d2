"""Server configuration a client changes at run time: the default result storage block.

``PUT /admin/storage`` names a saved block (one whose schema has the
``write-path`` capability) that clients use for results when they configure none
of their own (``prefect result-storage set``). The reference clears the setting
when that block, its schema or its type is deleted; here a setting whose block
document is gone reads as unset, which answers the same without touching the
delete paths.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import InvalidInput, NotFound
from headrace.storage import dialect
from headrace.storage import tables as t
from headrace.types import WireDict

DEFAULT_RESULT_STORAGE = "server-default-result-storage"
_sc = t.server_configuration.c


async def read_value(conn: AsyncConnection, key: str) -> WireDict | None:
    stmt = sa.select(_sc.value).where(_sc.key == key)
    return (await conn.execute(stmt)).scalar()


async def write_value(conn: AsyncConnection, key: str, value: WireDict, now: datetime) -> None:
    stmt = dialect.insert(conn.dialect.name, t.server_configuration).values(
        key=key, value=value, updated=now
    )
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated": now})
    )


async def delete_value(conn: AsyncConnection, key: str) -> None:
    await conn.execute(sa.delete(t.server_configuration).where(_sc.key == key))


async def read_default_result_storage(conn: AsyncConnection) -> WireDict:
    """``{"default_result_storage_block_id": id or None}`` (None once its block is gone)."""
    value = await read_value(conn, DEFAULT_RESULT_STORAGE) or {}
    block_id = value.get("default_result_storage_block_id")
    if block_id is not None:
        exists = sa.select(t.block_documents.c.id).where(t.block_documents.c.id == block_id)
        if (await conn.execute(exists)).first() is None:
            block_id = None
    return {"default_result_storage_block_id": block_id}


async def set_default_result_storage(
    conn: AsyncConnection, block_document_id: str, now: datetime
) -> WireDict:
    """Make ``block_document_id`` the default result storage.

    Raises:
        NotFound: no such block document.
        InvalidInput: its schema cannot write results (no ``write-path`` capability).
    """
    bd, bs = t.block_documents, t.block_schemas
    stmt = (
        sa.select(bs.c.capabilities)
        .select_from(bd.outerjoin(bs, bs.c.id == bd.c.block_schema_id))
        .where(bd.c.id == block_document_id)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f"Block document {block_document_id} not found.")
    if "write-path" not in (row.capabilities or []):
        raise InvalidInput(f"Block document {block_document_id} cannot be used for result storage.")
    value = {"default_result_storage_block_id": block_document_id}
    await write_value(conn, DEFAULT_RESULT_STORAGE, value, now)
    return value


async def clear_default_result_storage(conn: AsyncConnection) -> None:
    await delete_value(conn, DEFAULT_RESULT_STORAGE)
