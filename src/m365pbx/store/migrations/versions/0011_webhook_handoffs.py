"""Webhook handoffs: notifications received by one node for a tenant another node runs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

One row per webhook POST's notifications for one tenant, written by the node that received
and checked them, deleted by the node holding the tenant's lease when it takes them, or by
anyone once expired (docs/cluster.md). Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_handoffs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.Column("received_by", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_handoffs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_webhook_handoffs_tenant", "webhook_handoffs", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_webhook_handoffs_tenant", table_name="webhook_handoffs")
    op.drop_table("webhook_handoffs")
