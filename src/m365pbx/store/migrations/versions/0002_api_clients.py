"""API clients of the built-in presence API: key id, salted key hash, scopes, usage, revocation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Self-contained like 0001: the column types are spelled out, not imported from the models.
Only CREATE/DROP TABLE, which SQLite runs directly (no batch-mode table rebuild needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column(
            "scopes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_clients"),
        sa.UniqueConstraint("name", name="uq_api_clients_name"),
        sa.UniqueConstraint("key_id", name="uq_api_clients_key_id"),
        # SQLite must never hand out a deleted row's id again (as in 0001).
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("api_clients")
