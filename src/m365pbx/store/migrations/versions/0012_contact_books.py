"""Contact books: each person's own Outlook contacts, kept across restarts (issue 23).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

One row per person: their packed contacts and each contact folder's delta link as one
encrypted blob (contacts are personal data). Self-contained like 0001.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_books",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("book_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], ondelete="CASCADE",
                                name="fk_contact_books_person_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_contact_books"),
        sa.UniqueConstraint("person_id", name="uq_contact_books_person_id"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("contact_books")
