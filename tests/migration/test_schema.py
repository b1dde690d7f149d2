"""The Alembic history produces exactly the schema declared in ``storage/tables.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from headrace.settings import Settings
from headrace.storage import flows, migrate
from headrace.storage.db import Database
from headrace.storage.migrate import head_revision
from headrace.storage.tables import metadata

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty SQLite file or an empty Postgres database.

    Synchronous on purpose: ``pg_url`` creates its database with ``asyncio.run``,
    which cannot run inside the test's event loop.
    """
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def empty_db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    url = database_url
    db = Database(Settings(home=tmp_path, database_url=url))
    try:
        yield db
    finally:
        await db.dispose()


def _diff(sync: Connection) -> list[Any]:
    context = MigrationContext.configure(sync, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _table_names(sync: Connection) -> set[str]:
    return set(sa.inspect(sync).get_table_names())


async def _schema_diff(db: Database) -> list[Any]:
    async with db.read() as conn:
        return await conn.run_sync(_diff)


async def _tables(db: Database) -> set[str]:
    async with db.read() as conn:
        return await conn.run_sync(_table_names)


async def test_upgrade_from_empty_matches_declared_schema(empty_db: Database) -> None:
    assert await _tables(empty_db) == set()

    await migrate.upgrade(empty_db)

    assert await _schema_diff(empty_db) == []
    assert await _tables(empty_db) == {*metadata.tables, "alembic_version"}


async def test_upgrade_is_idempotent(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    await migrate.upgrade(empty_db)

    assert await _schema_diff(empty_db) == []


async def test_upgrade_records_head_revision(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)

    async with empty_db.read() as conn:
        versions = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    assert [v[0] for v in versions] == [head_revision()]


async def test_reset_leaves_an_empty_migrated_schema(empty_db: Database) -> None:
    await migrate.upgrade(empty_db)
    async with empty_db.write() as conn:
        await flows.ensure_flow(conn, "doomed", [], {})

    await migrate.reset(empty_db)

    assert await _schema_diff(empty_db) == []
    assert await _tables(empty_db) == {*metadata.tables, "alembic_version"}
    async with empty_db.read() as conn:
        for table in metadata.sorted_tables:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
            assert count == 0, table.name
        versions = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    assert [v[0] for v in versions] == [head_revision()]


async def test_reset_on_an_empty_database_migrates_it(empty_db: Database) -> None:
    await migrate.reset(empty_db)

    assert await _schema_diff(empty_db) == []


def test_head_revision_matches_alembic() -> None:
    """The cheap start-up check reads the same head Alembic would migrate to."""
    from alembic.script import ScriptDirectory

    from headrace.storage.migrate import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()
