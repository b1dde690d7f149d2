"""Deployment branches: a copy of a deployment under ``{name}:{branch}``.

The client's ``create_deployment_branch`` belongs to Prefect Cloud's deployment
versioning, which headrace does not model (``branch``, ``base`` and ``root`` stay
null). A branch is therefore a new deployment of the same flow, copied from the
source and then changed by the request's overrides. It is named
``{source name}:{branch}`` because a flow's deployment names are unique.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from headrace.errors import AlreadyExists, InvalidInput, NotFound
from headrace.storage import deployments
from headrace.storage import tables as t
from headrace.storage.common import row_dict
from headrace.types import WireDict

_dp = t.deployments.c
_ds = t.deployment_schedules.c

SCHEDULE_HANDLING = ("keep", "remove", "inactive")
"""What happens to the source's schedules on the branch (Cloud's options)."""


def branch_name(source: str, branch: str) -> str:
    name = f"{source}:{branch}"
    if len(name) > 255:
        raise InvalidInput(f"the branch deployment's name {name!r} is over 255 characters")
    return name


def _schedules(rows: list[WireDict], handling: str) -> list[WireDict]:
    if handling not in SCHEDULE_HANDLING:
        raise InvalidInput(f"schedule_handling must be one of {', '.join(SCHEDULE_HANDLING)}")
    if handling == "remove":
        return []
    keys = ("schedule", "active", "max_scheduled_runs", "parameters", "slug")
    copies = [{k: row[k] for k in keys} for row in rows]
    if handling == "inactive":
        copies = [{**copy, "active": False} for copy in copies]
    return copies


async def create_branch(
    conn: AsyncConnection,
    deployment_id: str,
    branch: str,
    schedule_handling: str,
    overrides: WireDict | None,
    now: datetime,
) -> WireDict:
    """Copy the deployment as ``{name}:{branch}``, apply ``overrides``, return the copy.

    Args:
        conn: a write connection.
        deployment_id: the source deployment.
        branch: the branch name.
        schedule_handling: ``keep``, ``remove`` or ``inactive`` (copies made inactive).
        overrides: a DeploymentUpdate (sent keys only) applied to the copy.
        now: the time of the change.

    Raises:
        NotFound: no such source deployment.
        AlreadyExists: the flow already has a deployment of the branch's name.
    """
    found = await conn.execute(sa.select(t.deployments).where(_dp.id == deployment_id))
    source = found.first()
    if source is None:
        raise NotFound("Deployment not found")
    name = branch_name(source.name, branch)
    taken = await conn.execute(
        sa.select(_dp.id).where(_dp.flow_id == source.flow_id, _dp.name == name)
    )
    if taken.first() is not None:
        raise AlreadyExists(f'Deployment "{name}" already exists for this flow.')
    schedule_rows = await conn.execute(
        sa.select(t.deployment_schedules)
        .where(_ds.deployment_id == deployment_id)
        .order_by(_ds.created, _ds.id)
    )
    body = {k: v for k, v in row_dict(source).items() if k in deployments.FIELDS}
    body.update(
        flow_id=str(source.flow_id),
        name=name,
        schedules=_schedules([row_dict(r) for r in schedule_rows], schedule_handling),
    )
    copy, _created = await deployments.upsert_deployment(conn, body, now)
    if overrides:
        await deployments.update_deployment(conn, copy["id"], overrides, now)
        copy = await deployments.read_deployment(conn, copy["id"], now)
    return copy
