"""flow run inputs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from headrace.storage.columns import Timestamp

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "flow_run_inputs",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_inputs")),
        sa.UniqueConstraint("flow_run_id", "key", name=op.f("uq_flow_run_inputs__flow_run_id_key")),
    )


def downgrade() -> None:
    op.drop_table("flow_run_inputs")
