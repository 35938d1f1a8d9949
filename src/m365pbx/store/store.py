"""The store as services use it: one engine, one secret box, a transaction at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from m365pbx.store.db import create_engine, mask_url, session_factory
from m365pbx.store.repositories import (
    ApiClientRepository,
    ApiUserRepository,
    AuditRepository,
    CredentialRepository,
    Declarations,
    LastPresenceRepository,
    PbxConnectionRepository,
    PeopleRepository,
    PresenceSessionRepository,
    ServiceAccountRepository,
    SipPublicationRepository,
    SubscriptionRepository,
    SyncReport,
    TenantRepository,
    rotate_secrets,
    sync_declared,
)
from m365pbx.store.secrets import SecretBox


class Repositories:
    """Every repository, bound to one session (one transaction)."""

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box
        self.tenants = TenantRepository(session, box)
        self.credentials = CredentialRepository(session, box)
        self.service_accounts = ServiceAccountRepository(session, box)
        self.pbx_connections = PbxConnectionRepository(session, box)
        self.people = PeopleRepository(session)
        self.subscriptions = SubscriptionRepository(session, box)
        self.presence_sessions = PresenceSessionRepository(session)
        self.last_presence = LastPresenceRepository(session)
        self.sip_publications = SipPublicationRepository(session, box)
        self.audit = AuditRepository(session)
        self.api_clients = ApiClientRepository(session)
        self.api_users = ApiUserRepository(session, box)

    async def sync_declared(self, declarations: Declarations) -> SyncReport:
        """Write the file's declarations (see `repositories.declarations.sync_declared`)."""
        return await sync_declared(self.session, self.box, declarations)

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret with the newest key."""
        return await rotate_secrets(self.session, self.box)


class Store:
    """The persistent store: hands out transactions with every repository bound to them."""

    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box
        self._sessions = session_factory(engine)

    @classmethod
    def open(cls, url: str, box: SecretBox) -> Store:
        """Return a store on a new engine for `url` (migrate it first with upgrade_database)."""
        return cls(create_engine(url), box)

    def __repr__(self) -> str:
        return f"Store({mask_url(self.engine.url)})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        """Yield the repositories in one transaction: committed on success, else rolled back."""
        async with self._sessions() as session, session.begin():
            yield Repositories(session, self.box)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
