"""Part status: each part's visible state per node; the unused per-object state columns go.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

One model of visible state (issue 21): the registry's statuses are recorded in
`part_status` for `m365pbx status` and other nodes. The `state`, `last_error` and
`state_changed_at` columns of service accounts, PBX connections and subscriptions were
never written at run time (a second, stale vocabulary): they are dropped. SQLite 3.35+
drops a plain column in place (no batch-mode rebuild, which would cascade-delete the
rows that reference a rebuilt table). Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATE_COLUMNS = {
    "service_accounts": ("state", "last_error", "state_changed_at"),
    "pbx_connections": ("state", "last_error", "state_changed_at"),
    "subscriptions": ("state", "last_error"),
}


def upgrade() -> None:
    op.create_table(
        "part_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("part", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("fix", sa.Text(), nullable=True),
        sa.Column("counters", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_part_status"),
        sa.UniqueConstraint("node", "part", name="uq_part_status_node_part"),
        sqlite_autoincrement=True,
    )
    for table, columns in _STATE_COLUMNS.items():
        for column in columns:
            op.drop_column(table, column)


def downgrade() -> None:
    for table, columns in _STATE_COLUMNS.items():
        for column in columns:
            if column == "state":
                op.add_column(table, sa.Column("state", sa.String(32), nullable=False,
                                               server_default="new"))
            elif column == "last_error":
                op.add_column(table, sa.Column("last_error", sa.Text(), nullable=True))
            else:
                op.add_column(table, sa.Column(column, sa.DateTime(timezone=True),
                                               nullable=True))
    op.drop_table("part_status")
