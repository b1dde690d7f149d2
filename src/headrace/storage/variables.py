"""Variables: named JSON values (``Variable.set/get``, ``prefect variable ...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import filters
from headrace.storage import tables as t
from headrace.storage.common import new_id, page, row_dict
from headrace.types import WireDict

MAX_VALUE_LENGTH = 5000
"""Longest serialized value, counted as the client counts it (compact JSON, UTF-8 bytes)."""

_v = t.variables.c

FIELDS: dict[str, filters.Compiler] = {
    "id": filters.field_uuid(_v.id),
    "name": filters.field_str(_v.name),
    "tags": filters.field_tags(_v.tags),
}

SORTS: dict[str, list[Any]] = {
    "CREATED_DESC": [_v.created.desc(), _v.id],
    "UPDATED_DESC": [_v.updated.desc(), _v.id],
    "NAME_DESC": [_v.name.desc()],
    "NAME_ASC": [_v.name.asc()],
}


def check_value(value: Any) -> None:
    """Refuse a value longer than the client's limit (``MAX_VARIABLE_VALUE_LENGTH``).

    Raises:
        InvalidInput: the value serializes to more than 5000 characters.
    """
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise InvalidInput("Variable value must be serializable to JSON") from None
    if value is not None and len(text) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"Variable value must be less than {MAX_VALUE_LENGTH} characters")


def _taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"A variable with the name {name!r} already exists.")


async def create_variable(conn: AsyncConnection, body: WireDict, now: datetime) -> WireDict:
    """Insert a variable; a used name raises AlreadyExists."""
    check_value(body.get("value"))
    row = {
        "id": new_id(),
        "created": now,
        "updated": now,
        "name": body["name"],
        "value": body.get("value"),
        "tags": body.get("tags") or [],
    }
    exists = await conn.execute(sa.select(_v.id).where(_v.name == row["name"]))
    if exists.first() is not None:
        raise _taken(row["name"])
    try:
        await conn.execute(sa.insert(t.variables), [row])
    except IntegrityError:  # a concurrent create on Postgres
        raise _taken(row["name"]) from None
    return row


async def _read(conn: AsyncConnection, clause: Any) -> WireDict:
    row = (await conn.execute(sa.select(t.variables).where(clause))).first()
    if row is None:
        raise NotFound("Variable not found.")
    return row_dict(row)


async def read_variable(conn: AsyncConnection, variable_id: str) -> WireDict:
    return await _read(conn, _v.id == variable_id)


async def read_variable_by_name(conn: AsyncConnection, name: str) -> WireDict:
    return await _read(conn, _v.name == name)


def _one(name: str | None, variable_id: str | None) -> Any:
    return _v.id == variable_id if variable_id is not None else _v.name == name


async def update_variable(
    conn: AsyncConnection,
    changes: WireDict,
    now: datetime,
    *,
    name: str | None = None,
    variable_id: str | None = None,
) -> None:
    """Apply the set fields of a ``VariableUpdate`` to the variable named or identified.

    Raises:
        NotFound: no such variable.
        AlreadyExists: a rename to a name another variable holds.
        InvalidInput: the new value is too long.
    """
    current = await _read(conn, _one(name, variable_id))
    values: WireDict = {"updated": now}
    if "value" in changes:
        check_value(changes["value"])
        values["value"] = changes["value"]
    if changes.get("tags") is not None:
        values["tags"] = changes["tags"]
    new_name = changes.get("name")
    if new_name is not None and new_name != current["name"]:
        taken = await conn.execute(sa.select(_v.id).where(_v.name == new_name))
        if taken.first() is not None:
            raise _taken(new_name)
        values["name"] = new_name
    try:
        await conn.execute(sa.update(t.variables).where(_v.id == current["id"]).values(values))
    except IntegrityError:
        raise _taken(str(new_name)) from None


async def delete_variable(
    conn: AsyncConnection, *, name: str | None = None, variable_id: str | None = None
) -> None:
    result = await conn.execute(sa.delete(t.variables).where(_one(name, variable_id)))
    if result.rowcount == 0:
        raise NotFound("Variable not found.")


def _where(body: WireDict, dialect: str) -> list[Any]:
    clause = filters.where(FIELDS, body.get("variables"), dialect, "variables")
    return [] if clause is None else [clause]


async def filter_variables(
    conn: AsyncConnection, body: WireDict, limit: int | None, offset: int | None
) -> list[WireDict]:
    order = filters.sort_clause(SORTS, body.get("sort"), "NAME_ASC")
    stmt = sa.select(t.variables).where(*_where(body, conn.dialect.name)).order_by(*order)
    return [row_dict(r) for r in await conn.execute(page(stmt, limit, offset))]


async def count_variables(conn: AsyncConnection, body: WireDict) -> int:
    stmt = sa.select(sa.func.count()).select_from(t.variables)
    return int((await conn.execute(stmt.where(*_where(body, conn.dialect.name)))).scalar_one())
