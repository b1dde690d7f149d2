"""service indexes: late runs and cancellation cleanup

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_flow_runs__state_type_state_name_next_scheduled_start_time"),
        "flow_runs",
        ["state_type", "state_name", "next_scheduled_start_time"],
        unique=False,
    )
    op.create_index(
        op.f("ix_flow_runs__state_type_state_timestamp"),
        "flow_runs",
        ["state_type", "state_timestamp"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_runs__state_type_state_timestamp"), table_name="flow_runs")
    op.drop_index(
        op.f("ix_flow_runs__state_type_state_name_next_scheduled_start_time"),
        table_name="flow_runs",
    )
