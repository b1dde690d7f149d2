"""Block documents: saved block values, with nested documents resolved on read.

A nested saved block is stored in its parent's ``data`` as the client sends it,
``{"$ref": {"block_document_id": ...}}``; reads replace it by the nested
document's (resolved) data and describe it in ``block_document_references``.
Secrets are hidden on read unless ``include_secrets``; each document is hidden
by its own schema's ``secret_fields``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace import blocks
from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import block_schemas, block_types, filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

MAX_DEPTH = 50
"""Deepest chain of nested documents resolved (the reference's limit)."""

_bd = t.block_documents.c

FIELDS: dict[str, filters.Compiler] = {
    "id": filters.field_uuid(_bd.id),
    "is_anonymous": filters.field_bool(_bd.is_anonymous),
    "block_type_id": filters.field_uuid(_bd.block_type_id),
    "name": filters.field_str(_bd.name),
}

SORTS: dict[str, list[Any]] = {
    "NAME_DESC": [_bd.name.desc()],
    "NAME_ASC": [_bd.name.asc()],
    "BLOCK_TYPE_AND_NAME_ASC": [_bd.block_type_name.asc(), _bd.name.asc()],
}


def _where(body: WireDict, dialect: str) -> list[Any]:
    """Clauses for a body's ``block_documents``, ``block_types`` and ``block_schemas``.

    Without an ``is_anonymous`` criterion, anonymous documents are left out, as
    the reference's filter default does; ``"is_anonymous": null`` includes them.
    """
    own = body.get("block_documents") or {}
    if not isinstance(own, dict):
        raise InvalidInput("block_documents must be an object")
    own = {"is_anonymous": {"eq_": False}, **own}
    clauses: list[Any] = []
    mine = filters.where(FIELDS, own, dialect, "block_documents")
    if mine is not None:
        clauses.append(mine)
    if body.get("block_types"):
        types = block_types.block_type_where({"block_types": body["block_types"]}, dialect)
        if types:
            clauses.append(_bd.block_type_id.in_(sa.select(t.block_types.c.id).where(*types)))
    schemas = block_schemas.schema_where(body, dialect)
    if schemas:
        clauses.append(_bd.block_schema_id.in_(sa.select(t.block_schemas.c.id).where(*schemas)))
    return clauses


async def filter_block_documents(
    conn: AsyncConnection,
    body: WireDict,
    limit: int | None,
    offset: int | None,
    include_secrets: bool,
) -> list[WireDict]:
    order = filters.sort_clause(SORTS, body.get("sort"), "NAME_ASC")
    stmt = sa.select(t.block_documents).where(*_where(body, conn.dialect.name))
    rows = await conn.execute(page(stmt.order_by(*order, _bd.id), limit, offset))
    return await _resolve(conn, [row_dict(r) for r in rows], include_secrets)


async def count_block_documents(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.block_documents)
    return int((await conn.execute(stmt.where(*_where(body, conn.dialect.name)))).scalar_one())


async def read_block_document(
    conn: AsyncConnection, document_id: str, include_secrets: bool
) -> WireDict:
    row = (await conn.execute(sa.select(t.block_documents).where(_bd.id == document_id))).first()
    if row is None:
        raise NotFound("Block document not found")
    return (await _resolve(conn, [row_dict(row)], include_secrets))[0]


async def read_block_document_by_name(
    conn: AsyncConnection, slug: str, name: str, include_secrets: bool
) -> WireDict:
    """The document ``name`` of the block type ``slug`` (anonymous or not)."""
    stmt = (
        sa.select(t.block_documents)
        .join(t.block_types, t.block_types.c.id == _bd.block_type_id)
        .where(t.block_types.c.slug == slug, _bd.name == name)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound("Block document not found")
    return (await _resolve(conn, [row_dict(row)], include_secrets))[0]


# -- writes ----------------------------------------------------------------------


async def create_block_document(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Store a document (secrets hidden in the answer).

    Raises:
        NotFound: the block type, the schema or a referenced document does not exist.
        InvalidInput: the schema belongs to another block type.
        AlreadyExists: the block type has a document with this name.
    """
    block_type = await block_types.read_block_type(conn, body["block_type_id"])
    schema = await block_schemas.read_block_schema(conn, body["block_schema_id"])
    if str(schema["block_type_id"]) != str(block_type["id"]):
        raise InvalidInput("The block schema belongs to another block type.")
    name = body.get("name")
    if body.get("is_anonymous") and not name:
        name = f"anonymous-{uuid.uuid4()}"
    if not name:
        raise InvalidInput("Names must be provided for block documents.")
    data = body.get("data") or {}
    await _check_references(conn, None, data)
    taken = AlreadyExists("Block already exists")
    exists = sa.select(_bd.id).where(_bd.block_type_id == block_type["id"], _bd.name == name)
    if (await conn.execute(exists)).first() is not None:
        raise taken
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "name": name,
        "data": data,
        "is_anonymous": bool(body.get("is_anonymous")),
        "block_type_name": block_type["name"],
        "block_type_id": block_type["id"],
        "block_schema_id": schema["id"],
    }
    try:
        await conn.execute(sa.insert(t.block_documents), [row])
    except IntegrityError:  # a concurrent create on Postgres
        raise taken from None
    return (await _resolve(conn, [row], include_secrets=False))[0]


async def update_block_document(
    conn: AsyncConnection, document_id: str, changes: WireDict, now: datetime
) -> None:
    """Apply a ``BlockDocumentUpdate``.

    ``data`` replaces the stored data, or is merged into it key by key when
    ``merge_existing_data`` (the default). Secret values sent back as
    ``********`` keep their stored value. A new ``block_schema_id`` must be of
    the same block type.
    """
    row = (await conn.execute(sa.select(t.block_documents).where(_bd.id == document_id))).first()
    if row is None:
        raise NotFound("Block document not found")
    current = row_dict(row)
    values: WireDict = {"updated": now}
    schema_id = changes.get("block_schema_id")
    if schema_id is not None and str(schema_id) != str(current["block_schema_id"]):
        schema = await block_schemas.read_block_schema(conn, schema_id)
        if str(schema["block_type_id"]) != str(current["block_type_id"]):
            raise InvalidInput(
                "Must migrate block document to a block schema of the same block type."
            )
        values["block_schema_id"] = schema["id"]
    merge = changes.get("merge_existing_data", True)
    if "data" in changes or not merge:
        stored = await block_schemas.read_block_schema(conn, current["block_schema_id"])
        secret_fields = stored["fields"].get("secret_fields") or []
        data = blocks.keep_hidden_secrets(changes.get("data") or {}, current["data"], secret_fields)
        if merge:
            data = {**await _without_dangling(conn, current["data"]), **data}
        await _check_references(conn, document_id, data)
        values["data"] = data
    await conn.execute(sa.update(t.block_documents).where(_bd.id == document_id).values(values))


async def delete_block_document(conn: AsyncConnection, document_id: str) -> None:
    """Delete a document. Documents that nest it read as if the field were unset."""
    result = await conn.execute(sa.delete(t.block_documents).where(_bd.id == document_id))
    if result.rowcount == 0:
        raise NotFound("Block document not found")


async def _without_dangling(conn: AsyncConnection, data: WireDict) -> WireDict:
    """``data`` without references to documents deleted since it was saved."""
    refs = blocks.references(data)
    alive = await _rows(conn, set(refs.values()))
    return {k: v for k, v in data.items() if k not in refs or refs[k] in alive}


async def _check_references(conn: AsyncConnection, owner: str | None, data: WireDict) -> None:
    """Referenced documents must exist and must not lead back to ``owner``."""
    refs = blocks.references(data)
    for field, ref in refs.items():
        try:
            uuid.UUID(ref)
        except ValueError:
            raise InvalidInput(f"data.{field}: {ref!r} is not a valid block document id") from None
    found = await _rows(conn, set(refs.values()))
    for field, ref in refs.items():
        if ref not in found:
            raise NotFound(f"Block document {ref} (referenced by {field!r}) not found")
    seen = set(found)
    for _ in range(MAX_DEPTH):
        if owner is not None and owner in found:
            raise InvalidInput("Block document references would form a cycle.")
        below = {r for row in found.values() for r in blocks.references(row["data"]).values()}
        if not below - seen:
            return
        seen |= below
        found = await _rows(conn, below)
    raise InvalidInput(f"Block documents are nested more than {MAX_DEPTH} levels deep.")


# -- reads: resolution of nested documents ----------------------------------------


async def _rows(conn: AsyncConnection, ids: set[str]) -> dict[str, WireDict]:
    if not ids:
        return {}
    rows = await conn.execute(sa.select(t.block_documents).where(_bd.id.in_(ids)))
    return {str(r.id): row_dict(r) for r in rows}


async def _resolve(
    conn: AsyncConnection, rows: list[WireDict], include_secrets: bool
) -> list[WireDict]:
    """``BlockDocument`` objects for ``rows``, nested documents loaded level by level."""
    docs = {str(r["id"]): r for r in rows}
    pending = {ref for r in rows for ref in blocks.references(r["data"]).values()} - set(docs)
    for _ in range(MAX_DEPTH):
        if not pending:
            break
        found = await _rows(conn, pending)
        docs.update(found)
        pending = {
            ref for r in found.values() for ref in blocks.references(r["data"]).values()
        } - set(docs)
    schemas = await block_schemas.read_many(
        conn, {str(d["block_schema_id"]) for d in docs.values()}
    )
    view = _View(docs, schemas, include_secrets)
    return [view.document(str(r["id"]), 0) for r in rows]


class _View:
    """Builds resolved documents from rows already loaded."""

    def __init__(
        self, docs: dict[str, WireDict], schemas: dict[str, WireDict], include_secrets: bool
    ) -> None:
        self.docs = docs
        self.schemas = schemas
        self.include_secrets = include_secrets

    def document(self, doc_id: str, depth: int) -> WireDict:
        row = self.docs[doc_id]
        schema = self.schemas.get(str(row["block_schema_id"]))
        refs = blocks.references(row["data"])
        data = {k: v for k, v in row["data"].items() if k not in refs}
        if not self.include_secrets and schema is not None:
            data = blocks.obfuscate(data, schema["fields"].get("secret_fields") or [])
        references: WireDict = {}
        for field, ref in refs.items():
            if ref not in self.docs or depth >= MAX_DEPTH:
                continue  # deleted since, like the reference's cascaded reference rows
            child = self.document(ref, depth + 1)
            data[field] = child["data"]
            references[field] = {
                "block_document": {
                    "id": child["id"],
                    "name": child["name"],
                    "block_type": child["block_type"],
                    "is_anonymous": child["is_anonymous"],
                    "block_document_references": child["block_document_references"],
                }
            }
        return {
            **row,
            "data": data,
            "block_schema": schema,
            "block_type": schema["block_type"] if schema else None,
            "block_document_references": references,
        }
