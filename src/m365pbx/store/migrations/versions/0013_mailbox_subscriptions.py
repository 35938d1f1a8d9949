"""Mailbox subscriptions: each person's event and contact change notifications, kept across
restarts (issues 22 and 23).

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06

One row per tenant, kind (calendar, contacts) and person: the Graph subscription, its
resource and expiry, and its client state encrypted. A table of its own, not `subscriptions`:
those belong to a delegated service account (not null), and the webhook handoff loads and
decrypts all of them at each unknown id, which 100,000 mailbox rows would make too slow.
Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailbox_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("graph_subscription_id", sa.String(128), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_state_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_mailbox_subscriptions_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("id", name="pk_mailbox_subscriptions"),
        sa.UniqueConstraint("graph_subscription_id",
                            name="uq_mailbox_subscriptions_graph_subscription_id"),
        sa.UniqueConstraint("tenant_id", "kind", "user_id",
                            name="uq_mailbox_subscriptions_tenant_id_kind_user_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("mailbox_subscriptions")
