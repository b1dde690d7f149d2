"""server configuration (default result storage)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from headrace.storage.columns import Timestamp, json_column

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_configuration",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", json_column(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_server_configuration")),
    )


def downgrade() -> None:
    op.drop_table("server_configuration")
