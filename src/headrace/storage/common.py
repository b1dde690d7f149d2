"""Small helpers shared by the query modules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from headrace.types import WireDict


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A time-ordered UUIDv7 string (sorts by creation, indexes stay compact)."""
    ms = int(datetime.now(UTC).timestamp() * 1000)
    rand = uuid.uuid4().int
    value = (ms & ((1 << 48) - 1)) << 80 | (0x7 << 76) | (rand & ((1 << 76) - 1))
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return str(uuid.UUID(int=value))


def row_dict(row: Any) -> WireDict:
    return dict(row._mapping)


def page(stmt: sa.Select[Any], limit: int | None, offset: int | None) -> sa.Select[Any]:
    if offset:
        stmt = stmt.offset(offset)
    if limit is not None:
        stmt = stmt.limit(limit)
    return stmt
