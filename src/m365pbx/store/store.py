"""The store as services use it: one engine, one secret box, a transaction at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from m365pbx.core.leases import Lease
from m365pbx.store.db import create_engine, mask_url, session_factory
from m365pbx.store.repositories import (
    AdminSessionRepository,
    AdminUserRepository,
    ApiClientRepository,
    ApiHandoffRepository,
    ApiUserRepository,
    AuditRepository,
    CalendarBlockRepository,
    ContactBookRepository,
    CredentialRepository,
    Declarations,
    FencedOut,
    HandoffRepository,
    LastPresenceRepository,
    LeaseRepository,
    MailboxSubscriptionRepository,
    MappingOverlayRepository,
    MatchingOverrideRepository,
    NodeRepository,
    PartStatusRepository,
    PbxConnectionRepository,
    PeopleRepository,
    PresenceSessionRepository,
    ServiceAccountRepository,
    ShownRepository,
    SipPublicationRepository,
    SubscriptionRepository,
    SyncReport,
    TenantRepository,
    rotate_secrets,
    sync_declared,
)
from m365pbx.store.secrets import SecretBox
from m365pbx.store.writes import (
    OneWriter,
    StoreWriteError,
    WriteHealth,
    WriteRetry,
    is_malfunction,
    is_passing,
    reason_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        self.mailbox_subscriptions = MailboxSubscriptionRepository(session, box)
        self.presence_sessions = PresenceSessionRepository(session)
        self.last_presence = LastPresenceRepository(session)
        self.sip_publications = SipPublicationRepository(session, box)
        self.calendar_blocks = CalendarBlockRepository(session, box)
        self.contact_books = ContactBookRepository(session, box)
        self.audit = AuditRepository(session)
        self.api_clients = ApiClientRepository(session)
        self.api_users = ApiUserRepository(session, box)
        self.part_status = PartStatusRepository(session)
        self.admin_users = AdminUserRepository(session)
        self.admin_sessions = AdminSessionRepository(session)
        self.mapping_overlays = MappingOverlayRepository(session)
        self.matching_overrides = MatchingOverrideRepository(session)
        self.leases = LeaseRepository(session)
        self.handoffs = HandoffRepository(session)
        self.nodes = NodeRepository(session)
        self.api_handoffs = ApiHandoffRepository(session)
        self.api_shown = ShownRepository(session)

    async def sync_declared(self, declarations: Declarations) -> SyncReport:
        """Write the file's declarations (see `repositories.declarations.sync_declared`)."""
        return await sync_declared(self.session, self.box, declarations)

    async def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret with the newest key."""
        return await rotate_secrets(self.session, self.box)


class Store:
    """The persistent store: hands out transactions with every repository bound to them."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, *,
                 retry: WriteRetry | None = None) -> None:
        self.engine = engine
        self.box = box
        self.retry = retry or WriteRetry()
        self.writes = WriteHealth()
        self._sessions = session_factory(engine)
        # SQLite has one writer per file: this process's transactions take turns.
        self._writer = OneWriter(engine.dialect.name == "sqlite", self.retry.lock_wait)

    @classmethod
    def open(cls, url: str, box: SecretBox) -> Store:
        """Return a store on a new engine for `url` (migrate it first with upgrade_database)."""
        return cls(create_engine(url), box)

    def __repr__(self) -> str:
        return f"Store({mask_url(self.engine.url)})"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        """Yield the repositories in one transaction: committed on success, else rolled back.

        Not retried: use `write` for changes that must not be lost to a passing failure.
        """
        async with self._writer.turn(), self._sessions() as session, session.begin():
            yield Repositories(session, self.box)

    async def write(self, work: Callable[[Repositories], Awaitable[T]], *, what: str) -> T:
        """Run `work` in one transaction; retry passing failures; report and raise the last.

        A failure of the database itself (a lock, a lost connection, a full disk) is raised
        as StoreWriteError once reported; a refusal (ConflictError, NotFoundError, ...) as is.

        `work` may run more than once, so it must only change the store (or redo the same).
        `what` names the data in the log and in /healthz ("the subscription of svc@...").
        """
        attempt = 0
        while True:
            try:
                async with self.transaction() as tx:
                    result = await work(tx)
            except Exception as exc:
                passing = is_passing(exc)
                if not passing and not is_malfunction(exc):
                    raise  # an answer (a conflict, a missing object), not a failing store
                reason = reason_of(exc)
                if not passing or attempt + 1 >= self.retry.attempts:
                    self.writes.failed_for_good(what, reason)
                    log.error("could not save %s after %d tries: %s", what, attempt + 1, reason)
                    raise StoreWriteError(f"could not save {what}: {reason}") from exc
                self.writes.retrying()
                delay = self.retry.delay(attempt)
                log.warning("could not save %s (%s); trying again in %.2f s", what, reason, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self.writes.succeeded()
            return result

    async def fenced_write(self, lease: Lease, work: Callable[[Repositories], Awaitable[T]], *,
                           what: str) -> T:
        """Like `write`, but refused (FencedOut, logged, nothing written) unless `lease` is
        still its job's newest: the check and `work` are one transaction (docs/cluster.md)."""
        async def fenced(tx: Repositories) -> T:
            await tx.leases.fence(lease)
            return await work(tx)

        try:
            return await self.write(fenced, what=what)
        except FencedOut as exc:
            log.warning("not saving %s: %s", what, exc)
            raise

    def health(self) -> dict[str, Any]:
        """The state of the store's writes, for /healthz."""
        return self.writes.report()

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
