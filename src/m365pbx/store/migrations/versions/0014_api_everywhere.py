"""The presence API on every node: handed events and directories, and shown presence.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

`api_handoffs`: what a PBX sent to the presence API of a node that does not run the
connection's tenant, taken (and deleted) by the node holding the tenant's lease, or
dropped once expired. `api_shown`: each person as the holder's presence API shows them,
read by the other nodes' API readers (docs/cluster.md). Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_handoffs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("connection", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("received_by", sa.String(255), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_handoffs"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_handoffs_tenant", "api_handoffs", ["tenant"])
    op.create_table(
        "api_shown",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_shown"),
        sa.UniqueConstraint("connection", "key", name="uq_api_shown_connection_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_api_shown_tenant", "api_shown", ["tenant"])
    op.create_index("ix_api_shown_version", "api_shown", ["version"])


def downgrade() -> None:
    op.drop_index("ix_api_shown_version", table_name="api_shown")
    op.drop_index("ix_api_shown_tenant", table_name="api_shown")
    op.drop_table("api_shown")
    op.drop_index("ix_api_handoffs_tenant", table_name="api_handoffs")
    op.drop_table("api_handoffs")
