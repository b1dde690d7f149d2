"""Artifacts and their per-key collections (the latest version of each key)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import NotFound
from headrace.storage import dialect as dialects
from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

MAX_METADATA_VALUE = 500
"""Longer metadata values are cut to this length plus ``...`` (as client and reference do)."""

_a = t.artifacts.c
_c = t.artifact_collections.c


def _key_field(column: Any) -> filters.Compiler:
    """Key filters: the string operators plus ``exists_`` (has a key or not)."""
    plain = filters.field_str(column)

    def compile_(ops: Mapping[str, Any], ctx: filters.Context) -> list[filters.Clause]:
        rest = {k: v for k, v in ops.items() if k != "exists_"}
        clauses = plain(rest, ctx)
        exists = ops.get("exists_")
        if exists is not None:
            clauses.append(column.is_not(None) if exists else column.is_(None))
        return clauses

    return compile_


FIELDS: dict[str, filters.Compiler] = {
    "id": filters.field_uuid(_a.id),
    "key": _key_field(_a.key),
    "flow_run_id": filters.field_uuid(_a.flow_run_id),
    "task_run_id": filters.field_uuid(_a.task_run_id),
    "type": filters.field_str(_a.type),
}

COLLECTION_FIELDS: dict[str, filters.Compiler] = {
    "latest_id": filters.field_uuid(_c.latest_id),
    "key": _key_field(_c.key),
    "flow_run_id": filters.field_uuid(_a.flow_run_id),
    "task_run_id": filters.field_uuid(_a.task_run_id),
    "type": filters.field_str(_a.type),
}


def _sorts(table: sa.Table) -> dict[str, list[Any]]:
    c = table.c
    return {
        "CREATED_DESC": [c.created.desc(), c.id.desc()],
        "UPDATED_DESC": [c.updated.desc(), c.id.desc()],
        "ID_DESC": [c.id.desc()],
        "KEY_DESC": [c.key.desc(), c.id.desc()],
        "KEY_ASC": [c.key.asc(), c.id.desc()],
    }


SORTS = _sorts(t.artifacts)
COLLECTION_SORTS = _sorts(t.artifact_collections)


def _metadata(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        k: v if len(str(v)) <= MAX_METADATA_VALUE else str(v)[:MAX_METADATA_VALUE] + "..."
        for k, v in value.items()
    }


async def create_artifact(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Insert an artifact; with a key it becomes that key's latest version."""
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "key": body.get("key"),
        "type": body.get("type"),
        "description": body.get("description"),
        "data": body.get("data"),
        "metadata_": _metadata(body.get("metadata_")),
        "flow_run_id": body.get("flow_run_id"),
        "task_run_id": body.get("task_run_id"),
    }
    await conn.execute(sa.insert(t.artifacts), [row])
    if row["key"] is not None:
        upsert = dialects.insert(conn.dialect.name, t.artifact_collections).values(
            id=new_id(), created=now, updated=now, key=row["key"], latest_id=row["id"]
        )
        await conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["key"], set_={"latest_id": row["id"], "updated": now}
            )
        )
    return row


async def read_artifact(conn: AsyncConnection, artifact_id: str) -> WireDict:
    row = (await conn.execute(sa.select(t.artifacts).where(_a.id == artifact_id))).first()
    if row is None:
        raise NotFound("Artifact not found.")
    return row_dict(row)


async def read_latest_artifact(conn: AsyncConnection, key: str) -> WireDict:
    """The newest artifact with ``key``."""
    stmt = sa.select(t.artifacts).join(t.artifact_collections, _c.latest_id == _a.id)
    row = (await conn.execute(stmt.where(_c.key == key))).first()
    if row is None:
        raise NotFound("Artifact not found.")
    return row_dict(row)


def _run_clauses(body: WireDict, dialect: str) -> list[Any]:
    """Artifacts whose flow run or task run matches the body's run, flow and deployment filters."""
    from headrace.storage import flow_runs, task_runs  # the run modules import widely

    clauses: list[Any] = []
    run_body = {k: body.get(k) for k in ("flow_runs", "flows", "deployments")}
    if any(run_body.values()):
        run_where = flow_runs.flow_run_where(run_body, dialect)
        if run_where:
            runs = sa.select(t.flow_runs.c.id).where(*run_where)
            clauses.append(_a.flow_run_id.in_(runs))
    if body.get("task_runs"):
        task_where = task_runs.task_run_where({"task_runs": body["task_runs"]}, dialect)
        if task_where:
            tasks = sa.select(t.task_runs.c.id).where(*task_where)
            clauses.append(_a.task_run_id.in_(tasks))
    return clauses


def _where(body: WireDict, dialect: str) -> list[Any]:
    own = filters.where(FIELDS, body.get("artifacts"), dialect, "artifacts")
    return ([] if own is None else [own]) + _run_clauses(body, dialect)


def _collection_where(body: WireDict, dialect: str) -> list[Any]:
    own = filters.where(COLLECTION_FIELDS, body.get("artifacts"), dialect, "artifacts")
    return ([] if own is None else [own]) + _run_clauses(body, dialect)


async def filter_artifacts(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    order = filters.sort_clause(SORTS, body.get("sort"), "ID_DESC")
    stmt = sa.select(t.artifacts).where(*_where(body, conn.dialect.name)).order_by(*order)
    return [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]


async def count_artifacts(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.artifacts)
    return int((await conn.execute(stmt.where(*_where(body, conn.dialect.name)))).scalar_one())


def _collections() -> sa.Select[Any]:
    """Each key's collection row joined with its latest artifact (``ArtifactCollection``)."""
    return sa.select(
        _c.id,
        _c.created,
        _c.updated,
        _c.key,
        _c.latest_id,
        _a.type,
        _a.description,
        _a.data,
        _a.metadata_,
        _a.flow_run_id,
        _a.task_run_id,
    ).join(t.artifacts, _a.id == _c.latest_id)


async def filter_latest_artifacts(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    order = filters.sort_clause(COLLECTION_SORTS, body.get("sort"), "ID_DESC")
    stmt = _collections().where(*_collection_where(body, conn.dialect.name)).order_by(*order)
    return [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]


async def count_latest_artifacts(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(
        t.artifact_collections.join(t.artifacts, _a.id == _c.latest_id)
    )
    where = _collection_where(body, conn.dialect.name)
    return int((await conn.execute(stmt.where(*where))).scalar_one())


async def update_artifact(
    conn: AsyncConnection, artifact_id: str, changes: WireDict, now: datetime
) -> None:
    """Apply the set fields of an ``ArtifactUpdate`` (data, description, metadata_)."""
    values: WireDict = {k: changes[k] for k in ("data", "description") if k in changes}
    if "metadata_" in changes:
        values["metadata_"] = _metadata(changes["metadata_"])
    result = await conn.execute(
        sa.update(t.artifacts).where(_a.id == artifact_id).values(updated=now, **values)
    )
    if result.rowcount == 0:
        raise NotFound("Artifact not found.")
    await conn.execute(
        sa.update(t.artifact_collections).where(_c.latest_id == artifact_id).values(updated=now)
    )


async def delete_artifact(conn: AsyncConnection, artifact_id: str, now: datetime) -> None:
    """Delete one artifact; its key's collection falls back to the previous version."""
    artifact = await read_artifact(conn, artifact_id)
    await conn.execute(sa.delete(t.artifacts).where(_a.id == artifact_id))
    if artifact["key"] is None:
        return
    previous = (
        await conn.execute(
            sa.select(_a.id)
            .where(_a.key == artifact["key"])
            .order_by(_a.created.desc(), _a.id.desc())
            .limit(1)
        )
    ).scalar()
    latest = _c.latest_id == artifact_id
    if previous is None:
        await conn.execute(sa.delete(t.artifact_collections).where(latest))
    else:
        await conn.execute(
            sa.update(t.artifact_collections).where(latest).values(latest_id=previous, updated=now)
        )
