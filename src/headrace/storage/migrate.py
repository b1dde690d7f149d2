"""Apply the Alembic migration history (one history for SQLite and Postgres).

Alembic (and Mako) cost several MB of memory for the life of the process, so the
server first compares the database's recorded revision with the newest one in
``migrations/versions`` and imports Alembic only when there is work to do.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from headrace.storage.db import Database
from headrace.storage.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w]+)['\"]?", re.MULTILINE)


def head_revision() -> str:
    """The newest revision: the one no other revision names as its parent."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found: dict[str, str] = {m[1]: m[2] for m in _REVISION.finditer(path.read_text())}
        revisions.add(found["revision"])
        if found.get("down_revision") not in (None, "None"):
            parents.add(found["down_revision"])
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"migration history must have one head, found {sorted(heads)}")
    return heads.pop()


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def current_revision(db: Database) -> str | None:
    """The revision recorded in the database, or None for an empty one."""
    async with db.read() as conn:
        has_table = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
        if not has_table:
            return None
        result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        return result.scalar()


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""
    target = head_revision() if revision == "head" else revision
    if await current_revision(db) == target:
        logger.info("database schema is at %s", target)
        return
    from alembic import command

    async with db.write() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))
    logger.info("database schema migrated to %s", target)


async def reset(db: Database) -> None:
    """Drop everything headrace owns, then migrate from empty."""
    async with db.write() as conn:
        await conn.run_sync(lambda sync: metadata.drop_all(sync))
        await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await upgrade(db)
