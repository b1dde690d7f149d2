"""state names of any length

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.VARCHAR(length=64), type_=sa.Text(), existing_nullable=False
        )

    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "state_name",
            existing_type=sa.VARCHAR(length=64),
            type_=sa.Text(),
            existing_nullable=True,
        )

    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.VARCHAR(length=64), type_=sa.Text(), existing_nullable=False
        )

    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "state_name",
            existing_type=sa.VARCHAR(length=64),
            type_=sa.Text(),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "state_name",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=64),
            existing_nullable=True,
        )

    with op.batch_alter_table("task_run_states", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.Text(), type_=sa.VARCHAR(length=64), existing_nullable=False
        )

    with op.batch_alter_table("flow_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "state_name",
            existing_type=sa.Text(),
            type_=sa.VARCHAR(length=64),
            existing_nullable=True,
        )

    with op.batch_alter_table("flow_run_states", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.Text(), type_=sa.VARCHAR(length=64), existing_nullable=False
        )
