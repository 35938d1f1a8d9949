"""Leases: one owner per job among several nodes, with a fencing epoch (issue 25).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

One row per job (`job` unique): the node holding it, until when (the database's clock),
and the epoch that grows at each change of hands. Rows are never deleted, so an epoch
never goes back. Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(512), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_leases"),
        sa.UniqueConstraint("job", name="uq_leases_job"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("leases")
