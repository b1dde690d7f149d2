"""A column for any JSON value, scalars included, alike on SQLite and Postgres.

``columns.json_column()`` suits objects and arrays. On SQLite its declared type
``JSON`` has numeric affinity, so a bare number such as ``55.0`` or ``42`` would
be stored as a SQLite number and come back as one, which the JSON decoder
refuses (and very large integers would lose precision). Variables' values and
artifacts' data may be bare numbers, so they use this type: JSON text in a TEXT
column on SQLite, ``jsonb`` on Postgres.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class JSONValue(sa.types.TypeDecorator[Any]):
    """Any JSON value (null, number, string, boolean, array, object)."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return value
        try:
            return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()
        except orjson.JSONEncodeError:  # integers beyond 64 bits
            return json.dumps(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "postgresql" or value is None:
            return value
        return orjson.loads(value)
