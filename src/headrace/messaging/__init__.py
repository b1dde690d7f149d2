"""Small notices between the parts of headrace: in-process, or across processes."""

from __future__ import annotations

from headrace.messaging.bus import Bus, Handler
from headrace.settings import Settings

__all__ = ["Bus", "Handler", "create"]


def create(settings: Settings) -> Bus:
    """The in-process bus on SQLite; on Postgres, one that also reaches other processes."""
    if settings.is_sqlite:
        return Bus()
    from headrace.messaging.postgres import PostgresBus

    return PostgresBus(settings.database_url)
