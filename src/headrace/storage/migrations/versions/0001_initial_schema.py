"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from headrace.storage.columns import Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_resources",
        sa.Column("event_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column("resource_role", sa.String(length=64), nullable=False),
        sa.Column("occurred", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint(
            "event_id", "resource_id", "resource_role", name=op.f("pk_event_resources")
        ),
    )
    with op.batch_alter_table("event_resources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_event_resources__resource_id_occurred"),
            ["resource_id", "occurred"],
            unique=False,
        )

    op.create_table(
        "events",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("occurred", Timestamp(), nullable=False),
        sa.Column("received", Timestamp(), nullable=False),
        sa.Column("event", sa.String(length=255), nullable=False),
        sa.Column("resource_id", sa.String(length=255), nullable=False),
        sa.Column(
            "resource",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "related",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("follows", sa.Uuid(as_uuid=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events__event_occurred"), ["event", "occurred"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events__occurred"), ["occurred"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_events__resource_id_occurred"), ["resource_id", "occurred"], unique=False
        )

    op.create_table(
        "flow_run_states",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_states")),
    )
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_flow_run_states__flow_run_id_timestamp"),
            ["flow_run_id", "timestamp"],
            unique=False,
        )

    op.create_table(
        "flow_runs",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("flow_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("state_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("state_type", sa.String(length=16), nullable=True),
        sa.Column("state_name", sa.String(length=64), nullable=True),
        sa.Column("state_timestamp", Timestamp(), nullable=True),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expected_start_time", Timestamp(), nullable=True),
        sa.Column("next_scheduled_start_time", Timestamp(), nullable=True),
        sa.Column("start_time", Timestamp(), nullable=True),
        sa.Column("end_time", Timestamp(), nullable=True),
        sa.Column("total_run_time", sa.Float(), server_default="0", nullable=False),
        sa.Column("deployment_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("deployment_version", sa.String(length=255), nullable=True),
        sa.Column("work_queue_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("work_queue_name", sa.String(length=255), nullable=True),
        sa.Column("work_pool_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("work_pool_name", sa.String(length=255), nullable=True),
        sa.Column("flow_version", sa.String(length=255), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "empirical_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("parent_task_run_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("auto_scheduled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("infrastructure_document_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("infrastructure_pid", sa.String(length=255), nullable=True),
        sa.Column(
            "created_by",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "job_variables",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_runs")),
        sa.UniqueConstraint(
            "flow_id", "idempotency_key", name=op.f("uq_flow_runs__flow_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_runs__created"), ["created"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_runs__deployment_id"), ["deployment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_flow_runs__expected_start_time"), ["expected_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_runs__flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_runs__parent_task_run_id"), ["parent_task_run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_flow_runs__state_type_expected_start_time"),
            ["state_type", "expected_start_time"],
            unique=False,
        )

    op.create_table(
        "flows",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flows")),
        sa.UniqueConstraint("name", name=op.f("uq_flows__name")),
    )
    op.create_table(
        "logs",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("task_run_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("worker_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logs")),
    )
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logs__flow_run_id_timestamp"), ["flow_run_id", "timestamp"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_logs__task_run_id_timestamp"), ["task_run_id", "timestamp"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_logs__timestamp"), ["timestamp"], unique=False)

    op.create_table(
        "task_run_states",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("task_run_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("timestamp", Timestamp(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run_states")),
    )
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_run_states__task_run_id_timestamp"),
            ["task_run_id", "timestamp"],
            unique=False,
        )

    op.create_table(
        "task_runs",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("task_key", sa.String(length=255), nullable=False),
        sa.Column("dynamic_key", sa.String(length=255), nullable=False),
        sa.Column("cache_key", sa.Text(), nullable=True),
        sa.Column("cache_expiration", Timestamp(), nullable=True),
        sa.Column("task_version", sa.String(length=255), nullable=True),
        sa.Column(
            "empirical_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "task_inputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("state_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.Column("state_type", sa.String(length=16), nullable=True),
        sa.Column("state_name", sa.String(length=64), nullable=True),
        sa.Column("state_timestamp", Timestamp(), nullable=True),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expected_start_time", Timestamp(), nullable=True),
        sa.Column("next_scheduled_start_time", Timestamp(), nullable=True),
        sa.Column("start_time", Timestamp(), nullable=True),
        sa.Column("end_time", Timestamp(), nullable=True),
        sa.Column("total_run_time", sa.Float(), server_default="0", nullable=False),
        sa.Column("flow_run_run_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_runs")),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_runs__created"), ["created"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_task_runs__expected_start_time"), ["expected_start_time"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_task_runs__flow_run_id_task_key_dynamic_key"),
            ["flow_run_id", "task_key", "dynamic_key"],
            unique=True,
        )
        batch_op.create_index(batch_op.f("ix_task_runs__state_type"), ["state_type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_runs__state_type"))
        batch_op.drop_index(batch_op.f("ix_task_runs__flow_run_id_task_key_dynamic_key"))
        batch_op.drop_index(batch_op.f("ix_task_runs__expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_task_runs__created"))

    op.drop_table("task_runs")
    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run_states__task_run_id_timestamp"))

    op.drop_table("task_run_states")
    with op.batch_alter_table("logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logs__timestamp"))
        batch_op.drop_index(batch_op.f("ix_logs__task_run_id_timestamp"))
        batch_op.drop_index(batch_op.f("ix_logs__flow_run_id_timestamp"))

    op.drop_table("logs")
    op.drop_table("flows")
    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_runs__state_type_expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_runs__parent_task_run_id"))
        batch_op.drop_index(batch_op.f("ix_flow_runs__flow_id"))
        batch_op.drop_index(batch_op.f("ix_flow_runs__expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_runs__deployment_id"))
        batch_op.drop_index(batch_op.f("ix_flow_runs__created"))

    op.drop_table("flow_runs")
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run_states__flow_run_id_timestamp"))

    op.drop_table("flow_run_states")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events__resource_id_occurred"))
        batch_op.drop_index(batch_op.f("ix_events__occurred"))
        batch_op.drop_index(batch_op.f("ix_events__event_occurred"))

    op.drop_table("events")
    with op.batch_alter_table("event_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_resources__resource_id_occurred"))

    op.drop_table("event_resources")
