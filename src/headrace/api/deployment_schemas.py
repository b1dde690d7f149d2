"""Request bodies for deployments, schedules, work pools, work queues and workers.

Schedules are checked for shape only (one of cron / interval / rrule, nothing
else); computing their occurrences belongs to ``headrace.schedules``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, ConfigDict, Field

from headrace.api.schemas import MAX_OFFSET, MAX_PAGE, Body, StateCreate


def _plain_name(value: str) -> str:
    # Names are URL path segments (/work_pools/{name}, /deployments/name/{flow}/{name}).
    if "/" in value or "%" in value:
        raise ValueError("name must not contain '/' or '%'")
    return value


Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_plain_name)]


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


TimeZone = Annotated[str | None, AfterValidator(_timezone)]


def _cron(value: str) -> str:
    fields = value.split()
    if not (value.startswith("@") and len(fields) == 1) and len(fields) not in (5, 6):
        raise ValueError(f"{value!r} is not a cron expression (5 or 6 fields, or @hourly etc.)")
    return value


class CronSchedule(Body):
    model_config = ConfigDict(extra="forbid")
    cron: Annotated[str, AfterValidator(_cron)]
    timezone: TimeZone = None
    day_or: bool = True


class IntervalSchedule(Body):
    model_config = ConfigDict(extra="forbid")
    interval: float = Field(gt=0, description="seconds")
    anchor_date: datetime = Field(default_factory=lambda: datetime.now(UTC))
    timezone: TimeZone = None


class RRuleSchedule(Body):
    model_config = ConfigDict(extra="forbid")
    rrule: str = Field(min_length=1, max_length=6500)
    timezone: TimeZone = None


Schedule = CronSchedule | IntervalSchedule | RRuleSchedule


class ScheduleCreate(Body):
    schedule: Schedule
    active: bool = True
    max_scheduled_runs: int | None = Field(default=None, gt=0)
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = Field(default=None, max_length=255)


class ScheduleUpdate(Body):
    schedule: Schedule | None = None
    active: bool | None = None
    max_scheduled_runs: int | None = Field(default=None, gt=0)
    parameters: dict[str, Any] | None = None
    slug: str | None = Field(default=None, max_length=255)


class ConcurrencyOptions(Body):
    """What a deployment's runs do when its ``concurrency_limit`` is reached."""

    collision_strategy: Literal["ENQUEUE", "CANCEL_NEW"] = "ENQUEUE"
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)


class _DeploymentFields(Body):
    version: str | None = Field(default=None, max_length=255)
    version_info: dict[str, Any] | None = None
    description: str | None = None
    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, gt=0)
    concurrency_options: ConcurrencyOptions | None = None
    enforce_parameter_schema: bool | None = None
    parameter_openapi_schema: dict[str, Any] | None = None
    pull_steps: list[dict[str, Any]] | None = None
    work_queue_name: Annotated[str | None, Field(max_length=255)] = None
    work_pool_name: Annotated[str | None, Field(max_length=255)] = None
    path: str | None = None
    entrypoint: str | None = None
    storage_document_id: UUID | None = None
    infrastructure_document_id: UUID | None = None


class DeploymentCreate(_DeploymentFields):
    name: Name
    flow_id: UUID
    schedules: list[ScheduleCreate] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)


class DeploymentUpdate(_DeploymentFields):
    schedules: list[ScheduleCreate] | None = None
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    tags: list[str] | None = None


class DeploymentFlowRunCreate(Body):
    state: StateCreate | None = None
    name: str | None = Field(default=None, max_length=255)
    parameters: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    infrastructure_document_id: UUID | None = None
    empirical_policy: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str | None = Field(default=None, max_length=255)
    parent_task_run_id: UUID | None = None
    work_queue_name: str | None = Field(default=None, max_length=255)
    job_variables: dict[str, Any] | None = None
    labels: dict[str, Any] = Field(default_factory=dict)
    enforce_parameter_schema: bool | None = None


class DeploymentRunsPoll(Body):
    deployment_ids: list[UUID]
    scheduled_before: datetime | None = None
    limit: int | None = Field(default=None, ge=0)


class WorkPoolCreate(Body):
    name: Name
    type: str = Field(default="prefect-agent", min_length=1, max_length=255)
    description: str | None = None
    base_job_template: dict[str, Any] = Field(default_factory=dict)
    is_paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0)
    storage_configuration: dict[str, Any] = Field(default_factory=dict)


class WorkPoolUpdate(Body):
    description: str | None = None
    is_paused: bool | None = None
    base_job_template: dict[str, Any] | None = None
    concurrency_limit: int | None = Field(default=None, ge=0)
    storage_configuration: dict[str, Any] | None = None


class WorkQueueCreate(Body):
    name: Name
    description: str | None = None
    is_paused: bool = False
    concurrency_limit: int | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=1)


class WorkQueueUpdate(Body):
    name: Name | None = None
    description: str | None = None
    is_paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=1)
    last_polled: datetime | None = None


class WorkerRunsPoll(Body):
    work_queue_names: list[str] | None = None
    scheduled_before: datetime | None = None
    scheduled_after: datetime | None = None
    limit: int | None = Field(default=None, ge=0)


class WorkerHeartbeat(Body):
    name: str = Field(min_length=1, max_length=255)
    heartbeat_interval_seconds: int | None = Field(default=None, ge=1)
    return_id: bool = False
    metadata: dict[str, Any] | None = None


class BranchingOptions(Body):
    schedule_handling: Literal["keep", "remove", "inactive"] = "remove"


class DeploymentBranch(Body):
    """``POST /deployments/{id}/branch``: copy a deployment under a branch name."""

    branch: Name
    options: BranchingOptions = Field(default_factory=BranchingOptions)
    overrides: DeploymentUpdate | None = None


class QueueRunsPoll(Body):
    """``POST /work_queues/{id}/get_runs`` (the agent-era poll of one queue)."""

    scheduled_before: datetime | None = None
    limit: int | None = Field(default=None, ge=0, le=MAX_PAGE)


STATUS_PAGE = 200
"""Page size of the concurrency-status views when the client sends none (reference)."""


class ConcurrencyStatusQuery(Body):
    """``POST /work_queues/{id}/concurrency_status``."""

    page: int = Field(default=1, ge=1, le=MAX_OFFSET)
    limit: int | None = Field(default=None, ge=0, le=MAX_PAGE)

    @property
    def per_page(self) -> int:
        return STATUS_PAGE if self.limit is None else self.limit


class PoolConcurrencyStatusQuery(ConcurrencyStatusQuery):
    """``POST /work_pools/{name}/concurrency_status``; ``flow_run_limit`` is per queue."""

    flow_run_limit: int = Field(default=10, ge=0, le=200)
