"""The declarative models: one class per table, the schema the migrations must match."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from m365pbx.core.credentials import SignInMethod
from m365pbx.core.status import PartState
from m365pbx.store.enums import (
    CredentialKind,
    MatchStatus,
    Origin,
    Side,
)
from m365pbx.store.types import UTCDateTime, enum_type, json_type, secret_type, utcnow

# Named constraints: Alembic's batch mode on SQLite can only alter what has a name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SECRET = {"secret": True}
"""Column info marking a Fernet-encrypted column: never shown, re-encrypted on key rotation."""

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key; INTEGER on SQLite, where only that spelling autoincrements (rowid alias)."""


def table_args(*items: Any) -> tuple[Any, ...]:
    """Return `__table_args__` with the options every table shares."""
    return (*items, TABLE_OPTIONS)


# SQLite reuses the largest rowid after a delete unless AUTOINCREMENT is on; ids must not
# come back (a re-matched person is a new person), as with PostgreSQL's sequences.
TABLE_OPTIONS: dict[str, Any] = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    """Base of every model: shared metadata and a repr that never shows secrets."""

    __table_args__: Any = table_args()
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}
    repr_fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        shown = ("id", *self.repr_fields)
        parts = []
        for name in shown:
            column = self.__table__.columns.get(name)
            if column is None or column.info.get("secret"):
                continue
            parts.append(f"{name}={getattr(self, name, None)!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class Declared(Base):
    """Base of the objects the YAML file can declare: who manages them, and when they changed."""

    __abstract__ = True

    origin: Mapped[Origin] = mapped_column(enum_type(Origin), default=Origin.STORE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=100)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, sort_order=100)


class Tenant(Declared):
    """An Entra ID tenant."""

    __tablename__ = "tenants"
    repr_fields = ("name", "entra_tenant_id", "origin")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    entra_tenant_id: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    mapping_overrides: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)


class Credential(Declared):
    """An app registration: client id plus a secret or a certificate, and what it may do."""

    __tablename__ = "credentials"
    __table_args__ = table_args(UniqueConstraint("tenant_id", "client_id"))
    repr_fields = ("name", "tenant_id", "client_id", "kind", "origin")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[CredentialKind] = mapped_column(enum_type(CredentialKind))
    client_secret_encrypted: Mapped[str | None] = mapped_column(secret_type(), info=SECRET)
    certificate_key_encrypted: Mapped[str | None] = mapped_column(secret_type(), info=SECRET)
    certificate_thumbprint: Mapped[str | None] = mapped_column(String(128))
    permissions: Mapped[list[str]] = mapped_column(json_type(), default=list)


class ServiceAccount(Declared):
    """A licensed Teams user whose delegated token owns presence subscriptions."""

    __tablename__ = "service_accounts"
    repr_fields = ("upn", "tenant_id", "sign_in_method", "origin")

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Removing an app registration an account signs in through is refused. NO ACTION, not
    # RESTRICT: PostgreSQL checks RESTRICT mid-cascade, which would break deleting a tenant.
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("credentials.id"), index=True)
    upn: Mapped[str] = mapped_column(String(320), unique=True)
    sign_in_method: Mapped[SignInMethod] = mapped_column(enum_type(SignInMethod))
    password_encrypted: Mapped[str | None] = mapped_column(secret_type(), info=SECRET)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(secret_type(), info=SECRET)


class PbxConnection(Declared):
    """One configured PBX adapter instance."""

    __tablename__ = "pbx_connections"
    repr_fields = ("name", "kind", "origin")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    # Passwords inside a connection's settings (AMI secret, SIP digest) live here, encrypted.
    secret_settings_encrypted: Mapped[str | None] = mapped_column(secret_type(), info=SECRET)
    mapping_overrides: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)


class Person(Base):
    """One match result: a Teams user and a PBX user, or one of them with the reason why not."""

    __tablename__ = "people"
    __table_args__ = table_args(
        UniqueConstraint("pbx_connection_id", "pbx_key"),
        Index(None, "tenant_id", "teams_user_id"),
        Index(None, "pbx_connection_id", "status"),
    )
    repr_fields = ("pbx_connection_id", "pbx_key", "teams_user_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx_connection_id: Mapped[int] = mapped_column(
        ForeignKey("pbx_connections.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    teams_user_id: Mapped[str | None] = mapped_column(String(64))
    pbx_key: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[MatchStatus] = mapped_column(enum_type(MatchStatus))
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    candidates: Mapped[list[Any]] = mapped_column(json_type(), default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Subscription(Base):
    """A Graph change-notification subscription we own."""

    __tablename__ = "subscriptions"
    repr_fields = ("graph_subscription_id", "service_account_id", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    graph_subscription_id: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    service_account_id: Mapped[int] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), index=True
    )
    resource: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    client_state_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    created_at: Mapped[datetime] = mapped_column()
    renewed_at: Mapped[datetime | None] = mapped_column()


class PresenceSession(Base):
    """Our `setPresence` session in Teams for one person, with the last value written."""

    __tablename__ = "presence_sessions"
    repr_fields = ("person_id", "session_id", "availability", "activity", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), unique=True)
    session_id: Mapped[str] = mapped_column(String(64))
    availability: Mapped[str] = mapped_column(String(32))
    activity: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)
    last_written_at: Mapped[datetime] = mapped_column()


class LastPresence(Base):
    """The last presence seen on one side for one person, and what we last wrote there."""

    __tablename__ = "last_presence"
    __table_args__ = table_args(UniqueConstraint("person_id", "side"))
    repr_fields = ("person_id", "side", "seen_values", "seen_sequence", "seen_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    side: Mapped[Side] = mapped_column(enum_type(Side))
    seen_values: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    seen_sequence: Mapped[int | None] = mapped_column(BigInteger)
    seen_at: Mapped[datetime | None] = mapped_column()
    written_values: Mapped[dict[str, Any] | None] = mapped_column(json_type())
    written_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class SipPublication(Base):
    """A SIP publication (PUBLISH ETag) a PBX connection holds, so a restart takes it over."""

    __tablename__ = "sip_publications"
    __table_args__ = table_args(UniqueConstraint("pbx_connection_id", "pbx_key"))
    repr_fields = ("pbx_connection_id", "pbx_key", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx_connection_id: Mapped[int] = mapped_column(
        ForeignKey("pbx_connections.id", ondelete="CASCADE")
    )
    pbx_key: Mapped[str] = mapped_column(String(255))
    # An entity-tag has no length limit (RFC 3903 §11.3.1): a server picks it.
    etag: Mapped[str] = mapped_column(Text)
    # The PBX user's fields give the address, and with personal accounts a password.
    user_fields_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    expires_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class ApiUser(Base):
    """A PBX user an API client uploaded to a connection of kind api, kept across restarts."""

    __tablename__ = "api_users"
    __table_args__ = table_args(UniqueConstraint("pbx_connection_id", "pbx_key"))
    repr_fields = ("pbx_connection_id", "pbx_key")

    id: Mapped[int] = mapped_column(primary_key=True)
    pbx_connection_id: Mapped[int] = mapped_column(
        ForeignKey("pbx_connections.id", ondelete="CASCADE")
    )
    pbx_key: Mapped[str] = mapped_column(String(255))
    # Any text fields the client sends: personal data, and for some PBXs a password.
    user_fields_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    updated_at: Mapped[datetime] = mapped_column()


class AuditEvent(Base):
    """One append-only audit record: who did what to which object."""

    __tablename__ = "audit_events"
    __table_args__ = table_args(Index(None, "object_type", "object_id"))
    repr_fields = ("at", "actor", "action", "object_type", "object_id")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)


class ApiClient(Base):
    """A client of the built-in presence API: its key's salted hash (never the key) and scopes."""

    __tablename__ = "api_clients"
    repr_fields = ("name", "key_id", "scopes", "revoked_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The public part of the key (its first characters), to find the row without the secret.
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    salt: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[str]] = mapped_column(json_type(), default=list)
    created_at: Mapped[datetime] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class PartStatusRow(Base):
    """One part's last recorded visible state (core/status.py), per node, for the CLI and
    other nodes; replaced on every change, refreshed now and then (`written_at`)."""

    __tablename__ = "part_status"
    __table_args__ = table_args(UniqueConstraint("node", "part"))
    repr_fields = ("node", "part", "state", "written_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(255))
    part: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[PartState] = mapped_column(enum_type(PartState))
    since: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    fix: Mapped[str | None] = mapped_column(Text)
    counters: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    written_at: Mapped[datetime] = mapped_column()


class AdminUser(Base):
    """A local administrator of the admin UI: an argon2 hash of the password (never the
    password), and the failed sign-ins that lock the account for a while."""

    __tablename__ = "admin_users"
    repr_fields = ("name", "failed_attempts", "locked_until")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_sign_in_at: Mapped[datetime | None] = mapped_column()


class AdminSessionRow(Base):
    """A signed-in admin's session or an unused one-time sign-in link: the SHA-256 of its
    token (never the token), so that every node and a restarted one know it."""

    __tablename__ = "admin_sessions"
    repr_fields = ("kind", "admin_name", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # "session" or "link"
    admin_name: Mapped[str] = mapped_column(String(100))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)


class MappingOverlayRow(Base):
    """A PBX connection's mapping overlay edited in the admin UI, applied over the
    defaults and the configuration's tenant and connection overlays."""

    __tablename__ = "mapping_overlays"
    repr_fields = ("connection", "updated_by", "updated_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    connection: Mapped[str] = mapped_column(String(100), unique=True)
    document: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    updated_at: Mapped[datetime] = mapped_column()
    updated_by: Mapped[str] = mapped_column(String(255))


PIN = "pin"
EXCLUDE = "exclude"
"""The kinds of a matching override."""


class MatchingOverrideRow(Base):
    """A pin (PBX user → Microsoft user) or an exclusion (a user of either side) of one PBX
    connection, set in the admin UI; matching applies it before its rules."""

    __tablename__ = "matching_overrides"
    __table_args__ = table_args(UniqueConstraint("connection", "key"))
    repr_fields = ("connection", "key", "kind", "teams_user")

    id: Mapped[int] = mapped_column(primary_key=True)
    connection: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(255))  # PBX key, or a Microsoft user's id/UPN
    kind: Mapped[str] = mapped_column(String(16))  # "pin" or "exclude"
    teams_user: Mapped[str | None] = mapped_column(String(255))  # a pin's Microsoft user
    created_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(255))
class LeaseRow(Base):
    """Who holds a job that must have one owner (core/leases.py), until when, at which
    fencing epoch. A row is never deleted: its epoch must only grow."""

    __tablename__ = "leases"
    repr_fields = ("job", "holder", "epoch", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    job: Mapped[str] = mapped_column(String(512), unique=True)
    holder: Mapped[str] = mapped_column(String(255))
    epoch: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column()
    acquired_at: Mapped[datetime] = mapped_column()
    renewed_at: Mapped[datetime] = mapped_column()


class NodeRow(Base):
    """One node of the installation (core/nodes.py): since when it runs, when it was last
    seen (the database's clock) and, after a clean stop, when it stopped."""

    __tablename__ = "nodes"
    repr_fields = ("node", "last_seen", "stopped_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    node: Mapped[str] = mapped_column(String(255), unique=True)
    started_at: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    stopped_at: Mapped[datetime | None] = mapped_column()


class WebhookHandoff(Base):
    """A Graph webhook POST's notifications for a tenant another node runs, waiting for
    that node (docs/cluster.md): deleted by the holder that takes them, or once expired."""

    __tablename__ = "webhook_handoffs"
    repr_fields = ("tenant", "notifications", "expires_at")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(255), index=True)
    body: Mapped[str] = mapped_column(Text)  # {"value": [the notifications, as Graph sent]}
    notifications: Mapped[int] = mapped_column(Integer)
    received_by: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()



class ApiHandoff(Base):
    """Events or a user directory a PBX sent to the presence API of a node that does not run
    the connection's tenant, waiting for the node that does (docs/cluster.md)."""

    __tablename__ = "api_handoffs"
    repr_fields = ("tenant", "connection", "kind", "items", "expires_at")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(255), index=True)
    connection: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # "events" or "users"
    body: Mapped[str] = mapped_column(Text)  # JSON list, as the API accepted it
    items: Mapped[int] = mapped_column(Integer)
    received_by: Mapped[str] = mapped_column(String(255))
    received_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class ApiShown(Base):
    """One person as the presence API shows them on the node running their tenant, for the
    other nodes' API readers (docs/cluster.md); `body` null: no longer followed."""

    __tablename__ = "api_shown"
    __table_args__ = table_args(UniqueConstraint("connection", "key"))
    repr_fields = ("connection", "key", "version")

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    connection: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch << 32 | counter
    body: Mapped[str | None] = mapped_column(Text)


DECLARABLE: tuple[type[Declared], ...] = (Tenant, Credential, ServiceAccount, PbxConnection)
"""The models that the YAML file can declare, parents first."""


class CalendarBlockRow(Base):
    """A person's calendar blocks ahead (what shows in the PBX from when to when, with the
    note), so a restart rebuilds their timers before the first calendar read. Encrypted:
    the notes are meeting subjects."""

    __tablename__ = "calendar_blocks"
    repr_fields = ("person_id", "updated_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"),
                                           unique=True)
    blocks_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    updated_at: Mapped[datetime] = mapped_column()


class MailboxSubscriptionRow(Base):
    """A change-notification subscription on one person's Outlook resource (their events
    or contacts), so a restart takes it over instead of deleting and making it again. One
    per tenant, kind and person; the client state is encrypted like the presence ones'.
    The tenant's subscription on `users` (directory changes) is kept here too."""

    __tablename__ = "mailbox_subscriptions"
    __table_args__ = table_args(UniqueConstraint("tenant_id", "kind", "user_id"))
    repr_fields = ("kind", "user_id", "graph_subscription_id", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # calendar, contacts, users
    # The Teams user id, lower case; "" for the tenant's one subscription on `users`.
    user_id: Mapped[str] = mapped_column(String(64))
    graph_subscription_id: Mapped[str] = mapped_column(String(128), unique=True)
    resource: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column()
    client_state_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    updated_at: Mapped[datetime] = mapped_column()


class ContactBookRow(Base):
    """A person's own Outlook contacts as the index packs them, with each folder's number
    and delta link, so a restart answers searches and lookups before the first read and
    then reads only the changes. Encrypted as a whole: names, numbers, mail addresses."""

    __tablename__ = "contact_books"
    repr_fields = ("person_id", "updated_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"),
                                           unique=True)
    book_encrypted: Mapped[str] = mapped_column(secret_type(), info=SECRET)
    updated_at: Mapped[datetime] = mapped_column()
