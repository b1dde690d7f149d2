"""concurrency limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from headrace.storage.columns import Timestamp

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concurrency_limits",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("slot_decay_per_second", sa.Float(), server_default="0", nullable=False),
        sa.Column("unleased_slots", sa.Float(), server_default="0", nullable=False),
        sa.Column("unleased_at", Timestamp(), nullable=True),
        sa.Column("deployment_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limits")),
        sa.UniqueConstraint("name", name=op.f("uq_concurrency_limits__name")),
        sa.UniqueConstraint("deployment_id", name=op.f("uq_concurrency_limits__deployment_id")),
    )
    op.create_table(
        "concurrency_leases",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("expires", Timestamp(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("holder_type", sa.String(length=32), nullable=True),
        sa.Column("holder_id", sa.Uuid(as_uuid=False), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_leases")),
    )
    op.create_index(
        op.f("ix_concurrency_leases__expires"), "concurrency_leases", ["expires"], unique=False
    )
    op.create_index(
        op.f("ix_concurrency_leases__holder_id"), "concurrency_leases", ["holder_id"], unique=False
    )
    op.create_table(
        "concurrency_lease_limits",
        sa.Column("lease_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("limit_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.PrimaryKeyConstraint("lease_id", "limit_id", name=op.f("pk_concurrency_lease_limits")),
    )
    op.create_index(
        op.f("ix_concurrency_lease_limits__limit_id"),
        "concurrency_lease_limits",
        ["limit_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_concurrency_lease_limits__limit_id"), table_name="concurrency_lease_limits"
    )
    op.drop_table("concurrency_lease_limits")
    op.drop_index(op.f("ix_concurrency_leases__holder_id"), table_name="concurrency_leases")
    op.drop_index(op.f("ix_concurrency_leases__expires"), table_name="concurrency_leases")
    op.drop_table("concurrency_leases")
    op.drop_table("concurrency_limits")
