"""variables artifacts blocks

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from headrace.storage.columns import Timestamp
from headrace.storage.json_value import JSONValue

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _uuid() -> sa.Uuid[str]:
    return sa.Uuid(as_uuid=False)


def _head() -> list[sa.Column[object]]:
    return [
        sa.Column("id", _uuid(), nullable=False),
        sa.Column("created", Timestamp(), nullable=False),
        sa.Column("updated", Timestamp(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "variables",
        *_head(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("value", JSONValue(), nullable=True),
        sa.Column("tags", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variables")),
        sa.UniqueConstraint("name", name=op.f("uq_variables__name")),
    )
    op.create_table(
        "artifacts",
        *_head(),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("data", JSONValue(), nullable=True),
        sa.Column("metadata_", _json(), nullable=True),
        sa.Column("flow_run_id", _uuid(), nullable=True),
        sa.Column("task_run_id", _uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
    )
    op.create_index(op.f("ix_artifacts__key_created"), "artifacts", ["key", "created"])
    op.create_index(op.f("ix_artifacts__flow_run_id"), "artifacts", ["flow_run_id"])
    op.create_index(op.f("ix_artifacts__task_run_id"), "artifacts", ["task_run_id"])
    op.create_table(
        "artifact_collections",
        *_head(),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("latest_id", _uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_collections")),
        sa.UniqueConstraint("key", name=op.f("uq_artifact_collections__key")),
    )
    op.create_table(
        "block_types",
        *_head(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("slug", sa.String(length=255), nullable=False),
        sa.Column("logo_url", sa.Text(), nullable=True),
        sa.Column("documentation_url", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("code_example", sa.Text(), nullable=True),
        sa.Column("is_protected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_types")),
        sa.UniqueConstraint("slug", name=op.f("uq_block_types__slug")),
    )
    op.create_table(
        "block_schemas",
        *_head(),
        sa.Column("checksum", sa.String(length=255), nullable=False),
        sa.Column("fields", _json(), nullable=False),
        sa.Column("capabilities", _json(), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("block_type_id", _uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_schemas")),
        sa.UniqueConstraint("checksum", "version", name=op.f("uq_block_schemas__checksum_version")),
    )
    op.create_index(
        op.f("ix_block_schemas__block_type_id_created"),
        "block_schemas",
        ["block_type_id", "created"],
    )
    op.create_table(
        "block_documents",
        *_head(),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.Column("is_anonymous", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("block_type_name", sa.String(length=255), nullable=True),
        sa.Column("block_type_id", _uuid(), nullable=False),
        sa.Column("block_schema_id", _uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_documents")),
        sa.UniqueConstraint(
            "block_type_id", "name", name=op.f("uq_block_documents__block_type_id_name")
        ),
    )
    op.create_index(
        op.f("ix_block_documents__block_schema_id"), "block_documents", ["block_schema_id"]
    )


def downgrade() -> None:
    op.drop_table("block_documents")
    op.drop_table("block_schemas")
    op.drop_table("block_types")
    op.drop_table("artifact_collections")
    op.drop_table("artifacts")
    op.drop_table("variables")
