"""Persistent store: SQLAlchemy async tables, repositories, Alembic migrations, secrets."""

from __future__ import annotations

from m365pbx.core.credentials import Permission, SignInMethod
from m365pbx.store.db import (
    DEFAULT_DATABASE_URL,
    create_engine,
    ensure_sqlite_directory,
    mask_url,
    parse_database_url,
    session_factory,
)
from m365pbx.store.enums import (
    CredentialKind,
    MatchStatus,
    Origin,
    Side,
)
from m365pbx.store.errors import (
    ConflictError,
    DatabaseUrlError,
    EmptyDirectoryError,
    NotFoundError,
    ReadOnlyObjectError,
    SecretKeyError,
    StoreError,
)
from m365pbx.store.migrate import database_revision, head_revision, upgrade_database
from m365pbx.store.repositories import (
    API_CHANNEL,
    HANDOFF_CHANNEL,
    SHOWN_CHANNEL,
    ApiHandedOff,
    ApiUserRecord,
    Change,
    CredentialSpec,
    Declarations,
    FencedOut,
    FoundMailboxSubscription,
    HandedOff,
    MailboxSubscriptionRecord,
    PbxConnectionSpec,
    PersonRecord,
    ReplaceReport,
    ServiceAccountSpec,
    ShownRow,
    SipPublicationRecord,
    StoredBlock,
    StoredBook,
    SyncReport,
    TenantSpec,
    shown_version,
)
from m365pbx.store.secrets import SecretBox, generate_key, load_secret_box
from m365pbx.store.store import Repositories, Store
from m365pbx.store.writes import StoreBusyError, StoreWriteError, WriteRetry

# The submodules other packages may import from directly (tests/test_public_names.py).
PUBLIC_MODULES = ("backup", "db", "errors", "secrets", "tables")

__all__ = [
    "API_CHANNEL",
    "DEFAULT_DATABASE_URL",
    "HANDOFF_CHANNEL",
    "SHOWN_CHANNEL",
    "ApiHandedOff",
    "ApiUserRecord",
    "Change",
    "ConflictError",
    "CredentialKind",
    "CredentialSpec",
    "DatabaseUrlError",
    "Declarations",
    "EmptyDirectoryError",
    "FencedOut",
    "FoundMailboxSubscription",
    "HandedOff",
    "MailboxSubscriptionRecord",
    "MatchStatus",
    "NotFoundError",
    "Origin",
    "PbxConnectionSpec",
    "Permission",
    "PersonRecord",
    "ReadOnlyObjectError",
    "ReplaceReport",
    "Repositories",
    "SecretBox",
    "SecretKeyError",
    "ServiceAccountSpec",
    "ShownRow",
    "Side",
    "SignInMethod",
    "SipPublicationRecord",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreWriteError",
    "StoredBlock",
    "StoredBook",
    "SyncReport",
    "TenantSpec",
    "WriteRetry",
    "create_engine",
    "database_revision",
    "ensure_sqlite_directory",
    "generate_key",
    "head_revision",
    "load_secret_box",
    "mask_url",
    "parse_database_url",
    "session_factory",
    "shown_version",
    "upgrade_database",
]
