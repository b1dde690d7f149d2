"""The declared schema. Alembic migrations must produce exactly this (tests/migration)."""

from __future__ import annotations

import sqlalchemy as sa

from headrace.storage.columns import Timestamp, json_column, uuid_column
from headrace.storage.json_value import JSONValue

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s__%(column_0_N_name)s",
        "uq": "uq_%(table_name)s__%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _id() -> sa.Column[str]:
    return sa.Column("id", uuid_column(), primary_key=True)


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
    ]


def _state_columns() -> list[sa.Column[object]]:
    """The denormalised current state of a run (the full state also lives in ``state``)."""
    return [
        sa.Column("state_id", uuid_column()),
        sa.Column("state_type", sa.String(16)),
        # Any text: the client sends names of any length and reads them back unchanged.
        sa.Column("state_name", sa.Text),
        sa.Column("state_timestamp", Timestamp()),
        sa.Column("state", json_column()),
    ]


def _run_timing_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("run_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expected_start_time", Timestamp()),
        sa.Column("next_scheduled_start_time", Timestamp()),
        sa.Column("start_time", Timestamp()),
        sa.Column("end_time", Timestamp()),
        sa.Column("total_run_time", sa.Float, nullable=False, server_default="0"),
    ]


def _state_history(name: str, run_column: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        _id(),
        sa.Column(run_column, uuid_column(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("data", json_column()),
        sa.Column("state_details", json_column(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Index(None, run_column, "timestamp"),
    )


flows = sa.Table(
    "flows",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("tags", json_column(), nullable=False),
    sa.Column("labels", json_column(), nullable=False),
    sa.UniqueConstraint("name"),
)

flow_runs = sa.Table(
    "flow_runs",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("flow_id", uuid_column(), nullable=False),
    *_state_columns(),
    *_run_timing_columns(),
    sa.Column("deployment_id", uuid_column()),
    sa.Column("deployment_version", sa.String(255)),
    sa.Column("work_queue_id", uuid_column()),
    sa.Column("work_queue_name", sa.String(255)),
    sa.Column("work_pool_id", uuid_column()),
    sa.Column("work_pool_name", sa.String(255)),
    sa.Column("flow_version", sa.String(255)),
    sa.Column("parameters", json_column(), nullable=False),
    sa.Column("idempotency_key", sa.String(255)),
    sa.Column("context", json_column(), nullable=False),
    sa.Column("empirical_policy", json_column(), nullable=False),
    sa.Column("tags", json_column(), nullable=False),
    sa.Column("labels", json_column(), nullable=False),
    sa.Column("parent_task_run_id", uuid_column()),
    sa.Column("auto_scheduled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("infrastructure_document_id", uuid_column()),
    sa.Column("infrastructure_pid", sa.String(255)),
    sa.Column("created_by", json_column()),
    sa.Column("job_variables", json_column(), nullable=False),
    sa.Index(None, "flow_id"),
    sa.Index(None, "state_type", "expected_start_time"),
    sa.Index(None, "parent_task_run_id"),
    sa.Index(None, "expected_start_time"),
    sa.Index(None, "deployment_id"),
    sa.Index(None, "created"),
    sa.Index(None, "work_queue_id", "state_type", "next_scheduled_start_time"),
    # The services' "when is the next one due" questions: the earliest start of
    # a run still named Scheduled (late runs), and CANCELLING/CANCELLED runs by
    # when they entered that state (cancellation cleanup).
    sa.Index(None, "state_type", "state_name", "next_scheduled_start_time"),
    sa.Index(None, "state_type", "state_timestamp"),
    sa.UniqueConstraint("flow_id", "idempotency_key"),
)

flow_run_states = _state_history("flow_run_states", "flow_run_id")

task_runs = sa.Table(
    "task_runs",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("flow_run_id", uuid_column()),
    sa.Column("task_key", sa.String(255), nullable=False),
    sa.Column("dynamic_key", sa.String(255), nullable=False),
    sa.Column("cache_key", sa.Text),
    sa.Column("cache_expiration", Timestamp()),
    sa.Column("task_version", sa.String(255)),
    sa.Column("empirical_policy", json_column(), nullable=False),
    sa.Column("tags", json_column(), nullable=False),
    sa.Column("labels", json_column(), nullable=False),
    sa.Column("task_inputs", json_column(), nullable=False),
    *_state_columns(),
    *_run_timing_columns(),
    sa.Column("flow_run_run_count", sa.Integer, nullable=False, server_default="0"),
    sa.Index(None, "flow_run_id", "task_key", "dynamic_key", unique=True),
    sa.Index(None, "state_type"),
    sa.Index(None, "expected_start_time"),
    sa.Index(None, "created"),
)

task_run_states = _state_history("task_run_states", "task_run_id")

logs = sa.Table(
    "logs",
    metadata,
    _id(),
    sa.Column("created", Timestamp(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("timestamp", Timestamp(), nullable=False),
    sa.Column("flow_run_id", uuid_column()),
    sa.Column("task_run_id", uuid_column()),
    sa.Column("worker_id", uuid_column()),
    sa.Index(None, "flow_run_id", "timestamp"),
    sa.Index(None, "task_run_id", "timestamp"),
    sa.Index(None, "timestamp"),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("occurred", Timestamp(), nullable=False),
    sa.Column("received", Timestamp(), nullable=False),
    sa.Column("event", sa.String(255), nullable=False),
    sa.Column("resource_id", sa.String(255), nullable=False),
    sa.Column("resource", json_column(), nullable=False),
    sa.Column("related", json_column(), nullable=False),
    sa.Column("payload", json_column(), nullable=False),
    sa.Column("follows", uuid_column()),
    sa.Index(None, "occurred"),
    sa.Index(None, "event", "occurred"),
    sa.Index(None, "resource_id", "occurred"),
)

# One row per (event, related resource): lets related/any_resource filters run in SQL.
event_resources = sa.Table(
    "event_resources",
    metadata,
    sa.Column("event_id", uuid_column(), primary_key=True),
    sa.Column("resource_id", sa.String(255), primary_key=True),
    sa.Column("resource_role", sa.String(64), primary_key=True),
    sa.Column("occurred", Timestamp(), nullable=False),
    sa.Index(None, "resource_id", "occurred"),
)

deployments = sa.Table(
    "deployments",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("flow_id", uuid_column(), nullable=False),
    sa.Column("version", sa.String(255)),
    sa.Column("version_info", json_column()),
    sa.Column("description", sa.Text),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("concurrency_limit", sa.Integer),
    sa.Column("concurrency_options", json_column()),
    sa.Column("enforce_parameter_schema", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("parameter_openapi_schema", json_column()),
    sa.Column("parameters", json_column(), nullable=False),
    sa.Column("job_variables", json_column(), nullable=False),
    sa.Column("pull_steps", json_column()),
    sa.Column("tags", json_column(), nullable=False),
    sa.Column("labels", json_column(), nullable=False),
    sa.Column("work_queue_id", uuid_column()),
    sa.Column("work_queue_name", sa.String(255)),
    sa.Column("work_pool_name", sa.String(255)),
    sa.Column("path", sa.Text),
    sa.Column("entrypoint", sa.Text),
    sa.Column("storage_document_id", uuid_column()),
    sa.Column("infrastructure_document_id", uuid_column()),
    sa.Column("created_by", json_column()),
    sa.Column("updated_by", json_column()),
    sa.Column("last_polled", Timestamp()),
    sa.UniqueConstraint("flow_id", "name"),
    sa.Index(None, "work_queue_id"),
)

deployment_schedules = sa.Table(
    "deployment_schedules",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("deployment_id", uuid_column(), nullable=False),
    sa.Column("schedule", json_column(), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("max_scheduled_runs", sa.Integer),
    sa.Column("parameters", json_column(), nullable=False),
    sa.Column("slug", sa.String(255)),
    # The last occurrence the scheduler materialised as a run (None: never ran).
    sa.Column("cursor", Timestamp()),
    sa.Index(None, "deployment_id"),
    sa.UniqueConstraint("deployment_id", "slug"),
)

work_pools = sa.Table(
    "work_pools",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("base_job_template", json_column(), nullable=False),
    sa.Column("is_paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("concurrency_limit", sa.Integer),
    sa.Column("storage_configuration", json_column(), nullable=False),
    sa.Column("default_queue_id", uuid_column()),
    sa.UniqueConstraint("name"),
)

work_queues = sa.Table(
    "work_queues",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("work_pool_id", uuid_column(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("is_paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("concurrency_limit", sa.Integer),
    sa.Column("priority", sa.Integer, nullable=False, server_default="1"),
    sa.Column("last_polled", Timestamp()),
    sa.UniqueConstraint("work_pool_id", "name"),
)

workers = sa.Table(
    "workers",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("work_pool_id", uuid_column(), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("last_heartbeat_time", Timestamp(), nullable=False),
    sa.Column("heartbeat_interval_seconds", sa.Integer),
    sa.UniqueConstraint("work_pool_id", "name"),
)

# Values a paused run asks for and receives (pause_flow_run(wait_for_input=...),
# send_input / receive_input). ``value`` is stored verbatim: the client sends JSON
# text and reads the same bytes back.
flow_run_inputs = sa.Table(
    "flow_run_inputs",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("flow_run_id", uuid_column(), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("sender", sa.String(255)),
    sa.UniqueConstraint("flow_run_id", "key"),
)

# ---- service leases (migration 0006) ----

# Who runs each singleton service right now. A process runs a singleton service
# only while it holds the row's lease; another takes over once ``expires`` passes.
service_leases = sa.Table(
    "service_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired", Timestamp(), nullable=False),
    sa.Column("expires", Timestamp(), nullable=False),
)

# ---- server configuration (migration 0011) ----

# Settings a client changes at run time (``/admin/storage``), one JSON value per key.
server_configuration = sa.Table(
    "server_configuration",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", json_column(), nullable=False),
    sa.Column("updated", Timestamp(), nullable=False),
)

# ---- concurrency limits (migration 0007) ----

# Global concurrency limits (v2). A v1 tag limit is the row named ``tag:<tag>``; a
# deployment's ``concurrency_limit`` is the row whose ``deployment_id`` is set.
# Occupancy is never a stored counter: it is the slots of the live leases that
# cover the limit, plus ``unleased_slots`` (taken without a lease, e.g. by
# ``rate_limit()``) as of ``unleased_at``, decaying from then at
# ``slot_decay_per_second`` (see ``orchestration/slots.py``).
concurrency_limits = sa.Table(
    "concurrency_limits",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("limit", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("slot_decay_per_second", sa.Float, nullable=False, server_default="0"),
    sa.Column("unleased_slots", sa.Float, nullable=False, server_default="0"),
    sa.Column("unleased_at", Timestamp()),
    sa.Column("deployment_id", uuid_column()),
    sa.UniqueConstraint("name"),
    sa.UniqueConstraint("deployment_id"),
)

# A lease holds ``slots`` on each limit linked to it until it is released or
# ``expires`` passes; renewing moves ``expires``. Rows of expired leases are
# deleted by the lease-expiry service, but no count ever includes them.
concurrency_leases = sa.Table(
    "concurrency_leases",
    metadata,
    _id(),
    sa.Column("created", Timestamp(), nullable=False),
    sa.Column("expires", Timestamp(), nullable=False),
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("holder_type", sa.String(32)),
    sa.Column("holder_id", uuid_column()),
    sa.Index(None, "expires"),
    sa.Index(None, "holder_id"),
)

concurrency_lease_limits = sa.Table(
    "concurrency_lease_limits",
    metadata,
    sa.Column("lease_id", uuid_column(), primary_key=True),
    sa.Column("limit_id", uuid_column(), primary_key=True),
    sa.Index(None, "limit_id"),
)

# ---- variables, artifacts, blocks (migration 0008) ----

variables = sa.Table(
    "variables",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("value", JSONValue()),
    sa.Column("tags", json_column(), nullable=False),
    sa.UniqueConstraint("name"),
)

# No foreign keys to runs: an artifact may name a task run the server knows only
# from events (or not yet), and artifacts outlive the runs they came from.
artifacts = sa.Table(
    "artifacts",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("key", sa.String(255)),
    sa.Column("type", sa.String(255)),
    sa.Column("description", sa.Text),
    sa.Column("data", JSONValue()),
    sa.Column("metadata_", json_column()),
    sa.Column("flow_run_id", uuid_column()),
    sa.Column("task_run_id", uuid_column()),
    sa.Index(None, "key", "created"),
    sa.Index(None, "flow_run_id"),
    sa.Index(None, "task_run_id"),
)

# One row per artifact key: the key's identity (id, first created) and its latest version.
artifact_collections = sa.Table(
    "artifact_collections",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("latest_id", uuid_column(), nullable=False),
    sa.UniqueConstraint("key"),
)

block_types = sa.Table(
    "block_types",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(255), nullable=False),
    sa.Column("logo_url", sa.Text),
    sa.Column("documentation_url", sa.Text),
    sa.Column("description", sa.Text),
    sa.Column("code_example", sa.Text),
    sa.Column("is_protected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("slug"),
)

# ``fields`` is kept as the client sent it (definitions and block_schema_references
# included), so reads return exactly what the checksum was computed from.
block_schemas = sa.Table(
    "block_schemas",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("checksum", sa.String(255), nullable=False),
    sa.Column("fields", json_column(), nullable=False),
    sa.Column("capabilities", json_column(), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("block_type_id", uuid_column(), nullable=False),
    sa.UniqueConstraint("checksum", "version"),
    sa.Index(None, "block_type_id", "created"),
)

# ``data`` keeps nested saved blocks as ``{"$ref": {"block_document_id": ...}}``;
# reads resolve them.
block_documents = sa.Table(
    "block_documents",
    metadata,
    _id(),
    *_stamps(),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("data", json_column(), nullable=False),
    sa.Column("is_anonymous", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("block_type_name", sa.String(255)),
    sa.Column("block_type_id", uuid_column(), nullable=False),
    sa.Column("block_schema_id", uuid_column(), nullable=False),
    sa.UniqueConstraint("block_type_id", "name"),
    sa.Index(None, "block_schema_id"),
)

# ---- background task queue (migration 0009) ----

# One row per background task run (``task.delay()``) not yet started by a task
# worker. Unclaimed rows wait for delivery; a claimed row is held by the task
# worker ``claimed_by`` (its client id) until ``lease_until``, which its live
# subscription keeps renewing. ``state`` is the deferred Scheduled state pushed
# to the worker (it names the parameters in result storage). ``priority`` 0 is a
# retry or redelivery, served before new runs (1) of the same keys.
task_run_queue = sa.Table(
    "task_run_queue",
    metadata,
    sa.Column("task_run_id", uuid_column(), primary_key=True),
    sa.Column("task_key", sa.String(255), nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False),
    sa.Column("enqueued", Timestamp(), nullable=False),
    sa.Column("state", json_column(), nullable=False),
    sa.Column("claimed_by", sa.String(255)),
    sa.Column("claimed_at", Timestamp()),
    sa.Column("acked_at", Timestamp()),
    sa.Column("lease_until", Timestamp()),
    sa.Column("deliveries", sa.Integer, nullable=False, server_default="0"),
    sa.Index(None, "task_key", "priority", "enqueued"),
    sa.Index(None, "claimed_by"),
    sa.Index(None, "lease_until"),
)

# ---- celery monitor (migration 0010) ----

# One row per Celery task, folded from its events (``celery_monitor/fold.py``).
# Times are epoch seconds, as Celery and Flower give them. ``received``,
# ``started`` and ``name`` are the sort keys of Flower's task list; they hold 0 /
# "" while unknown (not NULL), so one plain index serves both sort directions
# with Flower's "unknown first when ascending" order on both backends.
celery_tasks = sa.Table(
    "celery_tasks",
    metadata,
    sa.Column("uuid", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Column("name", sa.String(255), nullable=False, server_default=""),
    sa.Column("worker", sa.String(255)),
    sa.Column("client", sa.String(255)),
    sa.Column("args", sa.Text),
    sa.Column("kwargs", sa.Text),
    sa.Column("result", sa.Text),
    sa.Column("exception", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("eta", sa.Text),
    sa.Column("expires", sa.Text),
    sa.Column("retries", sa.Integer),
    sa.Column("runtime", sa.Float),
    sa.Column("exchange", sa.String(255)),
    sa.Column("routing_key", sa.String(255)),
    sa.Column("root_id", sa.String(255)),
    sa.Column("parent_id", sa.String(255)),
    sa.Column("clock", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sent", sa.Float),
    sa.Column("received", sa.Float, nullable=False, server_default="0"),
    sa.Column("started", sa.Float, nullable=False, server_default="0"),
    sa.Column("succeeded", sa.Float),
    sa.Column("failed", sa.Float),
    sa.Column("retried", sa.Float),
    sa.Column("revoked", sa.Float),
    sa.Column("rejected", sa.Float),
    sa.Index(None, "timestamp", "uuid"),
    sa.Index(None, "received", "uuid"),
    sa.Index(None, "started", "uuid"),
    sa.Index(None, "name", "timestamp"),
    sa.Index(None, "state", "timestamp"),
    sa.Index(None, "worker", "timestamp"),
    sa.Index(None, "parent_id"),
)

# Every task name seen, so ``/flower/api/task/types`` never scans the tasks.
celery_task_types = sa.Table(
    "celery_task_types",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
)

# One row per Celery worker: its latest heartbeat fields, updated in place.
# ``heartbeat`` is the monitor's clock at the newest sign of life (NULL after a
# goodbye); ``info`` holds the latest ``inspect`` answers (``?refresh=1``).
celery_workers = sa.Table(
    "celery_workers",
    metadata,
    sa.Column("hostname", sa.String(255), primary_key=True),
    sa.Column("freq", sa.Float, nullable=False),
    sa.Column("pid", sa.Integer),
    sa.Column("sw_ident", sa.Text),
    sa.Column("sw_ver", sa.Text),
    sa.Column("sw_sys", sa.Text),
    sa.Column("active", sa.Integer),
    sa.Column("processed", sa.Integer),
    sa.Column("loadavg", json_column()),
    sa.Column("clock", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("timestamp", sa.Float),
    sa.Column("heartbeat", sa.Float),
    sa.Column("alive_at", sa.Float),
    sa.Column("offline_at", sa.Float),
    sa.Column("info", json_column()),
    sa.Column("info_updated", sa.Float),
)
