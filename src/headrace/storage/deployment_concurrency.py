"""Deployment concurrency in storage: the limit a flow-run decision reads, the lease
changes it makes, and how many runs a poll may offer.

The rules themselves are pure (``orchestration/deployment_concurrency.py``); a
deployment's limit is the v2 limit whose ``deployment_id`` is the deployment.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.orchestration import deployment_concurrency as rules
from headrace.orchestration import slots
from headrace.orchestration.decisions import DeploymentSlots, LeaseAction
from headrace.storage import concurrency_limits as limits
from headrace.storage import tables as t
from headrace.storage.common import new_id, row_dict
from headrace.storage.concurrency_leases import Holder, insert_lease, limit_views, release, renew
from headrace.types import WireDict

_cl = t.concurrency_limits.c
_ls = t.concurrency_leases.c
_ll = t.concurrency_lease_limits.c


def _lease_uuid(value: str | None) -> str | None:
    """A lease id from a client's state details, if it is a UUID at all (else no lease)."""
    try:
        return None if value is None else str(uuid.UUID(str(value)))
    except ValueError:
        return None


async def deployment_slots(
    conn: AsyncConnection,
    deployment_id: str,
    lease_id: str | None,
    now: datetime,
) -> DeploymentSlots | None:
    """The deployment's limit for one orchestration decision (locked until commit)."""
    rows = await limits.limit_rows(conn, _cl.deployment_id == deployment_id, lock=True)
    if not rows:
        return None
    found = await conn.execute(
        sa.select(t.deployments.c.concurrency_options).where(t.deployments.c.id == deployment_id)
    )
    options: WireDict = found.scalar() or {}
    (view,) = await limit_views(conn, rows, now)
    live = False
    lease_id = _lease_uuid(lease_id)
    if lease_id:
        stmt = (
            sa.select(_ls.id)
            .join(t.concurrency_lease_limits, _ll.lease_id == _ls.id)
            .where(_ls.id == lease_id, _ll.limit_id == view.id, _ls.expires > now)
        )
        live = (await conn.execute(stmt)).first() is not None
    return DeploymentSlots(
        limit_id=view.id,
        limit=view.limit,
        active=view.active,
        has_room=slots.judge([view], 1, now).fits,
        strategy=str(options.get("collision_strategy") or "ENQUEUE"),
        lease_seconds=float(options.get("grace_period_seconds") or rules.DEFAULT_LEASE_SECONDS),
        lease_live=live,
        new_lease_id=new_id(),
    )


async def apply_actions(
    conn: AsyncConnection, actions: tuple[LeaseAction, ...], flow_run_id: str, now: datetime
) -> None:
    """Make the lease changes of a flow-run decision, in order."""
    for action in actions:
        if action.kind == "release":
            stale = _lease_uuid(action.lease_id)
            await release(conn, [stale] if stale else [])
            continue
        assert action.seconds is not None and action.limit_id is not None  # acquire/renew
        if action.kind == "renew":
            await renew(conn, action.lease_id, action.seconds, now)
        else:
            expires = now + timedelta(seconds=action.seconds)
            holder = Holder("flow_run", flow_run_id)
            await insert_lease(conn, action.lease_id, [action.limit_id], 1, expires, holder, now)


async def deployment_room(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    """Free slots of each deployment whose runs wait for one (an active ENQUEUE limit).

    Deployments without a limit, with an inactive one, or with ``CANCEL_NEW``
    (their runs must be offered so that the PENDING rule cancels them) are absent.
    """
    stmt = (
        sa.select(t.concurrency_limits, t.deployments.c.concurrency_options)
        .join(t.deployments, t.deployments.c.id == _cl.deployment_id)
        .where(_cl.active.is_(sa.true()))
    )
    rows = [row_dict(r) for r in await conn.execute(stmt)]
    rows = [
        r
        for r in rows
        if (r["concurrency_options"] or {}).get("collision_strategy") != "CANCEL_NEW"
    ]
    room: dict[str, int] = {}
    for row, view in zip(rows, await limit_views(conn, rows, now), strict=True):
        free = view.limit - slots.occupancy(view, now)
        room[str(row["deployment_id"])] = max(0, int(free + 1e-9))
    return room


def full_deployments(room: dict[str, int]) -> list[str]:
    return sorted(d for d, free in room.items() if free == 0)


def within_room(runs: list[WireDict], room: dict[str, int]) -> list[WireDict]:
    """Keep, in order, no more runs of each deployment than it has free slots."""
    left = dict(room)
    kept: list[WireDict] = []
    for run in runs:
        deployment_id = None if run.get("deployment_id") is None else str(run["deployment_id"])
        if deployment_id in left:
            if left[deployment_id] <= 0:
                continue
            left[deployment_id] -= 1
        kept.append(run)
    return kept
