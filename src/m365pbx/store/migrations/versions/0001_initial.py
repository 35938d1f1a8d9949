"""Initial schema: declared objects, match results, subscriptions, presence state, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-25

Self-contained on purpose: it spells the column types out instead of importing the models,
so later changes to the models cannot change what this revision creates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> Any:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _word(name: str) -> sa.Column[Any]:
    # StrEnum values are stored as VARCHAR(32) without a CHECK: a new value needs no rebuild.
    return sa.Column(name, sa.String(32), nullable=False)


def _state_columns() -> list[sa.Column[Any]]:
    return [
        _word("state"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("state_changed_at", nullable=True),
    ]


def _declared_columns() -> list[sa.Column[Any]]:
    return [_word("origin"), _when("created_at"), _when("updated_at")]


# SQLite must never hand out a deleted row's id again (as PostgreSQL sequences never do).
NO_ID_REUSE = {"sqlite_autoincrement": True}


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("entra_tenant_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("mapping_overrides", _json(), nullable=False),
        *_declared_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
        sa.UniqueConstraint("entra_tenant_id", name="uq_tenants_entra_tenant_id"),
        **NO_ID_REUSE,
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        _word("kind"),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("certificate_key_encrypted", sa.Text(), nullable=True),
        sa.Column("certificate_thumbprint", sa.String(128), nullable=True),
        sa.Column("permissions", _json(), nullable=False),
        *_declared_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.UniqueConstraint("name", name="uq_credentials_name"),
        sa.UniqueConstraint("tenant_id", "client_id", name="uq_credentials_tenant_id_client_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_credentials_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        **NO_ID_REUSE,
    )
    op.create_table(
        "service_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=True),
        sa.Column("upn", sa.String(320), nullable=False),
        _word("sign_in_method"),
        sa.Column("password_encrypted", sa.Text(), nullable=True),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        *_state_columns(),
        *_declared_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_service_accounts"),
        sa.UniqueConstraint("upn", name="uq_service_accounts_upn"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_service_accounts_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name="fk_service_accounts_credential_id_credentials",
        ),
        **NO_ID_REUSE,
    )
    op.create_index("ix_service_accounts_tenant_id", "service_accounts", ["tenant_id"])
    op.create_index("ix_service_accounts_credential_id", "service_accounts", ["credential_id"])
    op.create_table(
        "pbx_connections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("secret_settings_encrypted", sa.Text(), nullable=True),
        sa.Column("mapping_overrides", _json(), nullable=False),
        *_state_columns(),
        *_declared_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_pbx_connections"),
        sa.UniqueConstraint("name", name="uq_pbx_connections_name"),
        **NO_ID_REUSE,
    )
    op.create_table(
        "people",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pbx_connection_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("teams_user_id", sa.String(64), nullable=True),
        sa.Column("pbx_key", sa.String(255), nullable=True),
        sa.Column("display_name", sa.String(255), nullable=False),
        _word("status"),
        sa.Column("rule", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("candidates", _json(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.UniqueConstraint(
            "pbx_connection_id", "pbx_key", name="uq_people_pbx_connection_id_pbx_key"
        ),
        sa.ForeignKeyConstraint(
            ["pbx_connection_id"],
            ["pbx_connections.id"],
            name="fk_people_pbx_connection_id_pbx_connections",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_people_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        **NO_ID_REUSE,
    )
    op.create_index("ix_people_tenant_id_teams_user_id", "people", ["tenant_id", "teams_user_id"])
    op.create_index("ix_people_pbx_connection_id_status", "people", ["pbx_connection_id", "status"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("graph_subscription_id", sa.String(128), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("service_account_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        _when("expires_at"),
        sa.Column("client_state_encrypted", sa.Text(), nullable=False),
        _word("state"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _when("created_at"),
        _when("renewed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.UniqueConstraint("graph_subscription_id", name="uq_subscriptions_graph_subscription_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name="fk_subscriptions_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_account_id"],
            ["service_accounts.id"],
            name="fk_subscriptions_service_account_id_service_accounts",
            ondelete="CASCADE",
        ),
        **NO_ID_REUSE,
    )
    op.create_index("ix_subscriptions_expires_at", "subscriptions", ["expires_at"])
    op.create_index("ix_subscriptions_tenant_id", "subscriptions", ["tenant_id"])
    op.create_index("ix_subscriptions_service_account_id", "subscriptions", ["service_account_id"])
    op.create_table(
        "presence_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("availability", sa.String(32), nullable=False),
        sa.Column("activity", sa.String(64), nullable=False),
        _when("expires_at"),
        _when("last_written_at"),
        sa.PrimaryKeyConstraint("id", name="pk_presence_sessions"),
        sa.UniqueConstraint("person_id", name="uq_presence_sessions_person_id"),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name="fk_presence_sessions_person_id_people",
            ondelete="CASCADE",
        ),
        **NO_ID_REUSE,
    )
    op.create_index("ix_presence_sessions_expires_at", "presence_sessions", ["expires_at"])
    op.create_table(
        "last_presence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        _word("side"),
        sa.Column("seen_values", _json(), nullable=True),
        sa.Column("seen_sequence", sa.BigInteger(), nullable=True),
        _when("seen_at", nullable=True),
        sa.Column("written_values", _json(), nullable=True),
        _when("written_at", nullable=True),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_last_presence"),
        sa.UniqueConstraint("person_id", "side", name="uq_last_presence_person_id_side"),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name="fk_last_presence_person_id_people",
            ondelete="CASCADE",
        ),
        **NO_ID_REUSE,
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("details", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        **NO_ID_REUSE,
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index(
        "ix_audit_events_object_type_object_id", "audit_events", ["object_type", "object_id"]
    )


def downgrade() -> None:
    for table in (
        "audit_events",
        "last_presence",
        "presence_sessions",
        "subscriptions",
        "people",
        "pbx_connections",
        "service_accounts",
        "credentials",
        "tenants",
    ):
        op.drop_table(table)
