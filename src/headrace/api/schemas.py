"""Request bodies the client sends, validated at the edge (422 with a detail on error).

Responses are plain dicts serialised by ``responses.JSON``; the shapes follow the
client's models (see docs/api-notes.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

StateTypeName = Literal[
    "SCHEDULED",
    "PENDING",
    "RUNNING",
    "PAUSED",
    "CANCELLING",
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "CRASHED",
]


MAX_PAGE = 10_000
"""Largest page a filter may ask for (the reference refuses more than 200)."""
MAX_OFFSET = 2**31 - 1


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def wire(self, **kwargs: Any) -> dict[str, Any]:
        """The body as JSON-ready values (UUIDs as strings; datetimes stay datetimes)."""
        data = self.model_dump(**kwargs)
        return _stringify_ids(data)


def _stringify_ids(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_ids(v) for v in value]
    return value


class StateCreate(Body):
    type: StateTypeName
    name: str | None = None
    message: str | None = None
    data: Any = None
    state_details: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime | None = None

    @field_validator("state_details", mode="before")
    @classmethod
    def _details(cls, value: Any) -> Any:
        return {} if value is None else value


class SetState(Body):
    state: StateCreate
    force: bool = False


class FlowCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)


class FlowRunCreate(Body):
    flow_id: UUID
    id: UUID | None = None
    name: str | None = Field(default=None, max_length=255)
    state: StateCreate | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    parent_task_run_id: UUID | None = None
    empirical_policy: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, max_length=255)
    deployment_id: UUID | None = None
    infrastructure_document_id: UUID | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None
    created_by: dict[str, Any] | None = None


class FlowRunUpdate(Body):
    name: str | None = Field(default=None, max_length=255)
    flow_version: str | None = None
    parameters: dict[str, Any] | None = None
    empirical_policy: dict[str, Any] | None = None
    tags: list[str] | None = None
    infrastructure_pid: str | None = None
    job_variables: dict[str, Any] | None = None


class TaskRunCreate(Body):
    task_key: str = Field(min_length=1, max_length=255)
    dynamic_key: str = Field(max_length=255)
    id: UUID | None = None
    name: str | None = Field(default=None, max_length=255)
    flow_run_id: UUID | None = None
    state: StateCreate | None = None
    cache_key: str | None = None
    cache_expiration: datetime | None = None
    task_version: str | None = None
    empirical_policy: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, Any] = Field(default_factory=dict)
    task_inputs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("dynamic_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class TaskRunUpdate(Body):
    name: str | None = Field(default=None, max_length=255)


class LogCreate(Body):
    name: str = Field(max_length=255)
    level: int = Field(ge=0, le=100)
    message: str
    timestamp: datetime
    flow_run_id: UUID | None = None
    task_run_id: UUID | None = None
    worker_id: UUID | None = None


class Filter(Body):
    """The shared shape of every ``/…/filter`` body; sub-filters stay raw dicts."""

    model_config = ConfigDict(extra="allow")
    sort: str | None = None
    limit: int | None = Field(default=None, ge=0, le=MAX_PAGE)
    offset: int | None = Field(default=None, ge=0, le=MAX_OFFSET)


class EventFilterBody(Body):
    filter: dict[str, Any] | None = None
    limit: int = Field(default=50, ge=0, le=1000)
