"""Nodes: the registry of an installation's nodes, for balancing jobs among them (issue 25).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07

One row per node id: when it started, when it was last seen and, after a clean stop, when
it stopped (times are the database's). Rows of nodes not seen for a day are deleted by the
running nodes. Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("node", name="uq_nodes_node"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("nodes")
