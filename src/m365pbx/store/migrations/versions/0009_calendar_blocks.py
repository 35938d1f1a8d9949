"""Calendar blocks: each person's calendar presence ahead, kept across restarts (issue 22).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-06

One row per person: the blocks (PBX presence, start, end, note) as encrypted JSON, since the
notes are meeting subjects. Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calendar_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("blocks_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_calendar_blocks_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_calendar_blocks"),
        sa.UniqueConstraint("person_id", name="uq_calendar_blocks_person_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("calendar_blocks")
