"""celery monitor

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from headrace.storage.columns import json_column

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TASK_INDEXES = (
    ("timestamp", "uuid"),
    ("received", "uuid"),
    ("started", "uuid"),
    ("name", "timestamp"),
    ("state", "timestamp"),
    ("worker", "timestamp"),
    ("parent_id",),
)


def _index_name(columns: tuple[str, ...]) -> str:
    return f"ix_celery_tasks__{'_'.join(columns)}"


def upgrade() -> None:
    op.create_table(
        "celery_tasks",
        sa.Column("uuid", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("name", sa.String(length=255), server_default="", nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("client", sa.String(length=255), nullable=True),
        sa.Column("args", sa.Text(), nullable=True),
        sa.Column("kwargs", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("exception", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("eta", sa.Text(), nullable=True),
        sa.Column("expires", sa.Text(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=True),
        sa.Column("runtime", sa.Float(), nullable=True),
        sa.Column("exchange", sa.String(length=255), nullable=True),
        sa.Column("routing_key", sa.String(length=255), nullable=True),
        sa.Column("root_id", sa.String(length=255), nullable=True),
        sa.Column("parent_id", sa.String(length=255), nullable=True),
        sa.Column("clock", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("sent", sa.Float(), nullable=True),
        sa.Column("received", sa.Float(), server_default="0", nullable=False),
        sa.Column("started", sa.Float(), server_default="0", nullable=False),
        sa.Column("succeeded", sa.Float(), nullable=True),
        sa.Column("failed", sa.Float(), nullable=True),
        sa.Column("retried", sa.Float(), nullable=True),
        sa.Column("revoked", sa.Float(), nullable=True),
        sa.Column("rejected", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_celery_tasks")),
    )
    for columns in _TASK_INDEXES:
        op.create_index(op.f(_index_name(columns)), "celery_tasks", list(columns), unique=False)
    op.create_table(
        "celery_task_types",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_celery_task_types")),
    )
    op.create_table(
        "celery_workers",
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("freq", sa.Float(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("sw_ident", sa.Text(), nullable=True),
        sa.Column("sw_ver", sa.Text(), nullable=True),
        sa.Column("sw_sys", sa.Text(), nullable=True),
        sa.Column("active", sa.Integer(), nullable=True),
        sa.Column("processed", sa.Integer(), nullable=True),
        sa.Column("loadavg", json_column(), nullable=True),
        sa.Column("clock", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=True),
        sa.Column("heartbeat", sa.Float(), nullable=True),
        sa.Column("alive_at", sa.Float(), nullable=True),
        sa.Column("offline_at", sa.Float(), nullable=True),
        sa.Column("info", json_column(), nullable=True),
        sa.Column("info_updated", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("hostname", name=op.f("pk_celery_workers")),
    )


def downgrade() -> None:
    op.drop_table("celery_workers")
    op.drop_table("celery_task_types")
    for columns in reversed(_TASK_INDEXES):
        op.drop_index(op.f(_index_name(columns)), table_name="celery_tasks")
    op.drop_table("celery_tasks")
