"""API users: the user directory each API connection's client uploaded, kept across restarts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Self-contained like 0001: the column types are spelled out, not imported from the models.
Only CREATE/DROP TABLE, which SQLite runs directly (no batch-mode table rebuild needed).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pbx_connection_id", sa.Integer(), nullable=False),
        sa.Column("pbx_key", sa.String(255), nullable=False),
        sa.Column("user_fields_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_users"),
        sa.UniqueConstraint(
            "pbx_connection_id", "pbx_key", name="uq_api_users_pbx_connection_id_pbx_key"
        ),
        sa.ForeignKeyConstraint(
            ["pbx_connection_id"],
            ["pbx_connections.id"],
            name="fk_api_users_pbx_connection_id_pbx_connections",
            ondelete="CASCADE",
        ),
        # SQLite must never hand out a deleted row's id again (as in 0001).
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("api_users")
