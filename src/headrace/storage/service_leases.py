"""Leases on singleton services: which process runs each one, and until when."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.storage import dialect as dialects
from headrace.storage import tables as t

_lease = t.service_leases.c


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired: datetime
    expires: datetime


async def claim(
    conn: AsyncConnection,
    names: Iterable[str],
    holder: str,
    now: datetime,
    duration: timedelta,
) -> list[Lease]:
    """Take or renew the leases on ``names`` for ``holder``; return every lease on them.

    A lease is taken when nobody holds it or its holder let it expire, and renewed
    when ``holder`` already has it; a live lease of another holder is left alone.
    The caller reads which of the returned leases are its own.
    """
    names = list(names)
    expires = now + duration
    for name in names:
        stmt = dialects.insert(conn.dialect.name, t.service_leases).values(
            name=name, holder=holder, acquired=now, expires=expires
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "holder": stmt.excluded.holder,
                "acquired": sa.case(
                    (_lease.holder == stmt.excluded.holder, _lease.acquired),
                    else_=stmt.excluded.acquired,
                ),
                "expires": stmt.excluded.expires,
            },
            where=sa.or_(_lease.holder == holder, _lease.expires <= now),
        )
        await conn.execute(stmt)
    return await read(conn, names)


async def renew_all(
    conn: AsyncConnection, names: Iterable[str], holder: str, now: datetime, duration: timedelta
) -> bool:
    """Extend ``holder``'s live leases on ``names`` in one statement.

    Returns True when every one of them was still ``holder``'s and live (the
    common case of a renewal); False means the caller must ``claim`` to learn more.
    """
    names = list(names)
    result = await conn.execute(
        sa.update(t.service_leases)
        .where(_lease.name.in_(names), _lease.holder == holder, _lease.expires > now)
        .values(expires=now + duration)
    )
    return result.rowcount == len(names)


async def release(conn: AsyncConnection, names: Iterable[str], holder: str) -> None:
    """Give up ``holder``'s leases on ``names`` so another process can take them at once."""
    await conn.execute(
        sa.delete(t.service_leases).where(_lease.name.in_(list(names)), _lease.holder == holder)
    )


async def read(conn: AsyncConnection, names: Iterable[str] | None = None) -> list[Lease]:
    """The current leases (of ``names``, or all), by name."""
    stmt = sa.select(t.service_leases).order_by(_lease.name)
    if names is not None:
        stmt = stmt.where(_lease.name.in_(list(names)))
    return [Lease(**dict(row._mapping)) for row in await conn.execute(stmt)]
