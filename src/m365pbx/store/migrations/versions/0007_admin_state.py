"""Admin sessions, mapping overlays and matching pins kept in the store (issue 21, §2).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

Sessions and one-time links by the SHA-256 of their token, so that a restart or another
node keeps them; the admin UI's mapping overlay per PBX connection; its pins and
exclusions per PBX connection. Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("admin_name", sa.String(100), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_admin_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_admin_sessions_expires_at", "admin_sessions", ["expires_at"])
    op.create_table(
        "mapping_overlays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("document", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mapping_overlays"),
        sa.UniqueConstraint("connection", name="uq_mapping_overlays_connection"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "matching_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("teams_user", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_matching_overrides"),
        sa.UniqueConstraint("connection", "key", name="uq_matching_overrides_connection_key"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("matching_overrides")
    op.drop_table("mapping_overlays")
    op.drop_index("ix_admin_sessions_expires_at", table_name="admin_sessions")
    op.drop_table("admin_sessions")
