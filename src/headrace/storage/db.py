"""Engines and transactions.

SQLite: one writer connection guarded by an asyncio lock (``BEGIN IMMEDIATE``) and a
separate pool of read-only connections, all in WAL mode, so "database is locked"
cannot happen inside headrace. Postgres: one bounded pool whose sessions carry a
``statement_timeout``, an ``idle_in_transaction_session_timeout`` and an
``application_name`` naming the component.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from headrace.errors import AlreadyExists, Unavailable
from headrace.settings import Settings

logger = logging.getLogger(__name__)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()


class Database:
    """Hands out short read and write transactions.

    Args:
        settings: where the database is and how big the pools are.
        component: name used as Postgres ``application_name`` suffix.
    """

    def __init__(self, settings: Settings, component: str = "api") -> None:
        self.settings = settings
        self.url = settings.database_url
        self.dialect = "sqlite" if settings.is_sqlite else "postgresql"
        self._write_lock = asyncio.Lock()
        if self.dialect == "sqlite":
            self._prepare_sqlite_file()
            self.writer = self._sqlite_engine(pool_size=1, read_only=False)
            self.reader = self._sqlite_engine(pool_size=4, read_only=True)
        else:
            self.writer = self._postgres_engine(component)
            self.reader = self.writer

    # -- engines -------------------------------------------------------------

    def _prepare_sqlite_file(self) -> None:
        path = sa.engine.make_url(self.url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    def _sqlite_engine(self, pool_size: int, read_only: bool) -> AsyncEngine:
        engine = create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=30,
            # Every use is a begin() block that ends in COMMIT or ROLLBACK; the
            # pool's own rollback on return would be one more trip to the driver
            # thread per transaction.
            pool_reset_on_return=None,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )

        @sa_event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours to issue.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=OFF")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        @sa_event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine

    def _postgres_engine(self, component: str) -> AsyncEngine:
        s = self.settings
        return create_async_engine(
            self.url,
            pool_size=s.db_pool_size,
            max_overflow=max(2, s.db_pool_size // 2),
            pool_timeout=30,
            pool_pre_ping=True,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={
                "server_settings": {
                    "application_name": f"headrace-{component}",
                    "statement_timeout": str(s.pg_statement_timeout_ms),
                    "idle_in_transaction_session_timeout": str(s.pg_idle_in_transaction_timeout_ms),
                }
            },
        )

    # -- transactions ----------------------------------------------------------

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One short write transaction; committed on exit, rolled back on error."""
        if self.dialect == "sqlite":
            async with self._write_lock, _translated(), self.writer.begin() as conn:
                yield conn
        else:
            async with _translated(), self.writer.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read transaction (a consistent snapshot)."""
        async with _translated(), self.reader.begin() as conn:
            yield conn

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            async with self.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:  # any failure means "not ready"
            return False

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Turn driver errors into headrace errors the API knows how to answer."""
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExists(str(exc.orig)) from exc
    except (OperationalError, DBAPIError) as exc:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            raise Unavailable("database connection lost") from exc
        if isinstance(exc, OperationalError):
            logger.warning("database error: %s", exc.orig)
            raise Unavailable(f"database unavailable: {exc.orig}") from exc
        raise
