"""Column types that behave the same on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class Timestamp(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp.

    Postgres stores ``timestamptz``. SQLite has no datetime type, so values are
    stored as fixed-width ISO-8601 UTC text, which sorts and compares correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def json_column() -> sa.types.TypeEngine[Any]:
    """JSON text on SQLite, ``jsonb`` on Postgres."""
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def uuid_column() -> sa.types.TypeEngine[Any]:
    """A UUID, handled as its canonical string form in Python."""
    return sa.Uuid(as_uuid=False)
