"""background task queue

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from headrace.storage.columns import Timestamp, json_column, uuid_column

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_run_queue",
        sa.Column("task_run_id", uuid_column(), nullable=False),
        sa.Column("task_key", sa.String(length=255), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("enqueued", Timestamp(), nullable=False),
        sa.Column("state", json_column(), nullable=False),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        sa.Column("claimed_at", Timestamp(), nullable=True),
        sa.Column("acked_at", Timestamp(), nullable=True),
        sa.Column("lease_until", Timestamp(), nullable=True),
        sa.Column("deliveries", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("task_run_id", name=op.f("pk_task_run_queue")),
    )
    op.create_index(
        op.f("ix_task_run_queue__task_key_priority_enqueued"),
        "task_run_queue",
        ["task_key", "priority", "enqueued"],
        unique=False,
    )
    op.create_index(
        op.f("ix_task_run_queue__claimed_by"), "task_run_queue", ["claimed_by"], unique=False
    )
    op.create_index(
        op.f("ix_task_run_queue__lease_until"), "task_run_queue", ["lease_until"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_task_run_queue__lease_until"), table_name="task_run_queue")
    op.drop_index(op.f("ix_task_run_queue__claimed_by"), table_name="task_run_queue")
    op.drop_index(
        op.f("ix_task_run_queue__task_key_priority_enqueued"), table_name="task_run_queue"
    )
    op.drop_table("task_run_queue")
