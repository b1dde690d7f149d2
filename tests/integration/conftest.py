"""Databases for the integration tests: each test gets a migrated, empty one, per backend.

A module migrates once per backend: a SQLite template file that each test copies,
and one Postgres database (``shared_pg_url``) that ``db`` empties before each test.
Creating and migrating a database per test costs about a second; copying or
emptying one costs milliseconds. Postgres skips locally when absent and fails
under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests import conftest

from headrace.settings import Settings
from headrace.storage import migrate
from headrace.storage import tables as t
from headrace.storage.db import Database

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# The server's time zone must not leak into results: sessions get one that is
# neither UTC nor a whole number of hours away from it.
PG_SESSION_TIMEZONE = "Asia/Kolkata"  # UTC+05:30, no daylight saving


async def migrate_url(url: str) -> None:
    database = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file for the module; each test gets a copy."""
    path = tmp_path_factory.mktemp("migrated") / "template.db"
    asyncio.run(migrate_url(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="module")
def shared_pg_url() -> Iterator[str]:
    """One migrated Postgres database for the module (dropped after it)."""
    if not conftest._pg_available():
        conftest._missing("PostgreSQL on 127.0.0.1:5432")
    name = f"headrace_it_{uuid.uuid4().hex[:12]}"
    conftest._psql(f'CREATE DATABASE "{name}"')
    conftest._psql(f"ALTER DATABASE \"{name}\" SET timezone TO '{PG_SESSION_TIMEZONE}'")
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        asyncio.run(migrate_url(url))
        yield url
    finally:
        conftest._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Synchronous: the module fixtures use asyncio.run, which cannot nest in a test's loop.
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("shared_pg_url"))


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: a copy of the SQLite template, or the shared Postgres one."""
    database = Database(Settings(home=tmp_path, database_url=database_url))
    if database.dialect == "postgresql":
        async with database.write() as conn:
            for table in t.metadata.sorted_tables:
                await conn.execute(sa.delete(table))
    try:
        yield database
    finally:
        await database.dispose()
