"""Apply the Alembic migration history (one history for SQLite and Postgres)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from headrace.storage.db import Database
from headrace.storage.tables import metadata

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    async with db.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
    logger.info("database schema is at %s", revision)


async def reset(db: Database) -> None:
    """Drop everything headrace owns, then migrate from empty."""
    async with db.write() as conn:
        await conn.run_sync(lambda sync: metadata.drop_all(sync))
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await upgrade(db)
