"""One tenant at run time: its Graph clients, directory sync, subscriptions and polling."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from m365pbx.clock import Clock
from m365pbx.config import Credential, Settings, Tenant
from m365pbx.config.connections import CalendarSettings
from m365pbx.config.models import SyncMode
from m365pbx.core.calendar import CalendarRules
from m365pbx.core.credentials import Permission, SignInMethod
from m365pbx.core.matching import MatchOptions, parse_rule
from m365pbx.declarations import certificate_sha1
from m365pbx.directory_files import load_pbx_users
from m365pbx.graph.auth import (
    AppTokenSource,
    Authority,
    ClientCredential,
    ServiceAccountTokenSource,
    TokenSource,
)
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import Forbidden
from m365pbx.graph.groups import memberships
from m365pbx.graph.proxy import ProxyChoice
from m365pbx.graph.users import list_users, users_delta, users_delta_link
from m365pbx.pbx.base import PbxConnection, PbxUser
from m365pbx.service.calendar_store import CalendarKeeper
from m365pbx.service.certificates import CertificateKeeper
from m365pbx.service.contacts import (
    ContactsBook,
    contacts_sync,
    directory_properties,
    feeding_changes,
    feeding_directory,
)
from m365pbx.service.contacts_store import ContactsKeeper, forget_contacts
from m365pbx.service.leases import Ownership
from m365pbx.service.persistence import (
    StoreMailboxRecords,
    StorePeople,
    StoreSubscriptionRecords,
)
from m365pbx.service.tenant_identity import TenantClaims, TenantIdentity
from m365pbx.store import Store
from m365pbx.sync.calendar import CalendarPlan, CalendarReader
from m365pbx.sync.calendar.subscriptions import CalendarSubscriptions
from m365pbx.sync.contacts import ContactsSync, ContactSubscriptions
from m365pbx.sync.directory import ConnectionDirectory, DirectorySync, teams_user_properties
from m365pbx.sync.directory_delta import DirectoryChanges
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365pbx.sync.signin import WatchedTokens
from m365pbx.sync.supervise import supervised
from m365pbx.sync.teams_to_pbx.coverage import NotificationCoverage
from m365pbx.sync.teams_to_pbx.owner import AccountOwner, Endpoints
from m365pbx.sync.teams_to_pbx.poller import PollPlan, PresencePoller
from m365pbx.sync.teams_to_pbx.pool import SubscriptionPool
from m365pbx.sync.teams_to_pbx.readback import ReadBack
from m365pbx.sync.teams_to_pbx.readings import ReadingConverter
from m365pbx.sync.users_subscription import UsersSubscription

log = logging.getLogger(__name__)


def credential_for(tenant: Tenant, permission: Permission) -> Credential | None:
    """The tenant's first credential granted `permission`."""
    return next((c for c in tenant.credentials if permission in c.permissions), None)


def client_credential(credential: Credential) -> ClientCredential:
    """The Graph layer's form of a configured credential."""
    if credential.client_secret is not None:
        return ClientCredential(str(credential.client_id),
                                secret=credential.client_secret.get_secret_value())
    assert credential.certificate_file is not None
    pem = credential.certificate_file.read_bytes()
    digest = certificate_sha1(pem, source=str(credential.certificate_file))
    password = credential.certificate_password
    return ClientCredential(str(credential.client_id), private_key_pem=pem.decode(),
                            thumbprint_hex=digest.hex(),
                            passphrase=None if password is None else password.get_secret_value())


def microsoft_proxy(settings: Settings) -> ProxyChoice:
    """The proxy decision for sign-in and Graph: `microsoft.proxy`, else HTTPS_PROXY."""
    return ProxyChoice.from_environment(settings.microsoft.proxy)


def match_options(settings_matching: Any, tenant: Tenant,
                  group_memberships: Mapping[str, Collection[str]] | None = None
                  ) -> MatchOptions:
    """Matching options of one PBX connection (memberships: user id → group ids)."""
    return MatchOptions(
        rules=tuple(parse_rule(rule) for rule in settings_matching.rules),
        casefold=settings_matching.casefold,
        unicode_normalize=settings_matching.unicode_normalize,
        strip_domain=settings_matching.strip_domain,
        phone_region=settings_matching.phone_region,
        allowed_groups=frozenset(str(g) for g in tenant.directory.group_ids) or None,
        group_memberships=group_memberships if tenant.directory.group_ids else None,
        require_teams_licence=tenant.directory.require_teams_licence,
    )


def teams_users_reader(client: GraphClient, keep: Collection[str], group_ids: Sequence[str],
                       group_memberships: dict[str, set[str]]
                       ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    """Reads the tenant's users, and the members of `group_ids` into `group_memberships`."""
    async def read() -> list[dict[str, Any]]:
        users = await list_users(client, keep)
        if group_ids:
            try:
                found = await memberships(client, list(group_ids))
            except Forbidden as exc:
                exc.hint = f"{exc.hint}, or empty directory.group_ids"
                raise
            # Swapped in whole: a failed read keeps the previous memberships.
            group_memberships.clear()
            group_memberships.update(found)
        return users

    return read


def calendar_plan(settings: CalendarSettings) -> CalendarPlan | None:
    """The calendar reader's plan for a connection's `calendar:` settings (None: off)."""
    if not settings.enabled:
        return None
    rules = CalendarRules(
        show_tentative=settings.show_tentative,
        show_working_elsewhere=settings.show_working_elsewhere,
        all_day_events=settings.all_day_events, out_of_office=settings.out_of_office,
        subject_as_note=settings.subject_as_note, private_note=settings.private_note,
        automatic_replies=settings.automatic_replies)
    return CalendarPlan(rules, settings.window.total_seconds(),
                        settings.poll_interval.total_seconds())


def users_file_reader(path: Path) -> Callable[[], Awaitable[list[PbxUser]]]:
    """Reads a PBX users export (CSV or JSON) anew at each call."""
    async def read() -> list[PbxUser]:
        loaded = await asyncio.to_thread(load_pbx_users, path)
        return list(loaded.users)

    return read


@dataclass
class TenantParts:
    """What one tenant runs; `pool` is None in polling mode."""

    app_client: GraphClient
    writer_client: GraphClient | None
    app_id: str
    directory: DirectorySync
    # Directory changes between full syncs (None when `directory.follow_changes` is off).
    changes: DirectoryChanges | None
    poller: PresencePoller
    readback: ReadBack
    pool: SubscriptionPool | None
    # Users change notifications that wake `changes` (with a public URL only).
    users_subscription: UsersSubscription | None = None
    # Calendar → PBX (None when no connection of the tenant switches `calendar` on).
    calendar: CalendarReader | None = None
    # Event change notifications that make `calendar` read a person at once (public URL).
    calendar_subscriptions: CalendarSubscriptions | None = None
    # The calendar's blocks in the store, handed back at start.
    calendar_keeper: CalendarKeeper | None = None
    # Contact search and caller lookup (None when no connection switches `contacts` on).
    contacts: ContactsSync | None = None
    # Contact change notifications that make `contacts` read a person at once (public URL).
    contact_subscriptions: ContactSubscriptions | None = None
    # Each person's own contacts in the store, handed back at start.
    contacts_keeper: ContactsKeeper | None = None


class TenantRuntime:
    """Builds and runs one tenant's parts."""

    def __init__(
        self,
        settings: Settings,
        tenant: Tenant,
        *,
        hub: PresenceHub,
        connections: Mapping[str, PbxConnection],
        store: Store,
        clock: Clock,
        http: httpx.AsyncClient,
        certificates: CertificateKeeper,
        on_people: Callable[[], None],
        service_account_tokens: Mapping[str, TokenSource] | None = None,
        converter: ReadingConverter | None = None,
        claims: TenantClaims | None = None,
        contacts: ContactsBook | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        # Several nodes: this tenant's jobs run under a lease, their writes fenced by it.
        self.ownership = ownership
        self.tenant = tenant
        self.store = store
        self.hub = hub
        self.clock = clock
        self.http = http
        self.certificates = certificates
        verify: bool | str = str(settings.microsoft.ca_file) if settings.microsoft.ca_file else True
        self.authority = Authority(str(tenant.tenant_id),
                                   host=str(settings.microsoft.login_url).rstrip("/"),
                                   verify=verify, proxy=microsoft_proxy(settings))
        self.identity = TenantIdentity(tenant.name, str(tenant.tenant_id), http=http,
                                       login_host=self.authority.host, clock=clock,
                                       claims=claims)
        graph_url = str(settings.microsoft.graph_url).rstrip("/")
        reader = (credential_for(tenant, Permission.PRESENCE_READ)
                  or credential_for(tenant, Permission.USERS_READ))
        if reader is None:
            raise ValueError(f"tenant {tenant.name!r} has no credential with presence.read "
                             "or users.read")
        self.app_id = str(reader.client_id)
        # How signing in goes, per app credential: the tenant's state (service/health.py).
        self.sign_ins = [WatchedTokens(AppTokenSource(self.authority, client_credential(reader)),
                                       clock, label=f"tenant {tenant.name}")]
        # Which sign-in uses which credential: a secret fixed in the file is swapped in here.
        self.sign_in_of = {reader.name: self.sign_ins[0]}
        app_client = GraphClient(self.sign_ins[0], http, base_url=graph_url, clock=clock)
        writer = credential_for(tenant, Permission.PRESENCE_WRITE)
        writer_client = None
        if writer is not None and writer is not reader:
            self.sign_ins.append(WatchedTokens(
                AppTokenSource(self.authority, client_credential(writer)), clock,
                label=f"tenant {tenant.name} (credential {writer.name})"))
            self.sign_in_of[writer.name] = self.sign_ins[-1]
        if writer is not None:
            writer_client = (app_client if writer is reader else GraphClient(
                self.sign_ins[-1], http, base_url=graph_url, clock=clock))
            self.app_id = str(writer.client_id)  # setPresence's sessionId is the writer's id
        tenant_connections = [
            c for c in settings.pbx_connections if c.tenant == tenant.name
        ]
        # directory.group_ids: the members are read at each full sync, for every connection.
        groups: dict[str, set[str]] = {}
        directories = [
            ConnectionDirectory(c.name, connections[c.name],
                                match_options(c.matching, tenant, groups),
                                source=users_file_reader(c.users_file) if c.users_file else None)
            for c in tenant_connections if c.name in connections
        ]
        keep = teams_user_properties(directories) | directory_properties(tenant_connections)
        follow = tenant.directory.follow_changes
        directory = DirectorySync(
            tenant.name,
            teams_users_reader(app_client, keep, [str(g) for g in tenant.directory.group_ids],
                               groups), directories,
            StorePeople(store, tenant.name, self.ownership), lambda _people: on_people(), clock,
            interval=tenant.directory.full_sync_interval.total_seconds(),
            keep_teams_users=follow,
        )
        changes = None
        if follow:
            changes = DirectoryChanges(
                directory, lambda: users_delta_link(app_client),
                lambda link: users_delta(app_client, link, keep), clock,
                interval=tenant.directory.changes_interval.total_seconds())
            directory.fetch_teams_users = changes.full_read(directory.fetch_teams_users)
        webhook = settings.webhook_url
        mode = settings.teams_to_pbx.mode
        use_webhooks = webhook is not None and mode is not SyncMode.POLLING
        plan = PollPlan(
            min_interval=(settings.teams_to_pbx.reconcile_interval if use_webhooks
                          else settings.teams_to_pbx.min_poll_interval).total_seconds()
        )
        # One converter for the whole service: its count of unknown values is the metric.
        converter = converter or ReadingConverter(settings.presence.fallback())
        pool = None
        if use_webhooks and webhook is not None:
            pool = self._pool(webhook, graph_url, store, service_account_tokens or {})
        # In auto mode people without flowing notifications are polled at the polling-mode
        # pace; mode webhook promises notifications only and reports them instead.
        uncovered_plan = PollPlan(
            min_interval=settings.teams_to_pbx.min_poll_interval.total_seconds())
        poll_uncovered = pool is not None and mode is not SyncMode.WEBHOOK
        poller = PresencePoller(app_client, hub, clock, self.teams_user_ids, plan=plan,
                                converter=converter, reconciling=use_webhooks,
                                uncovered=pool.uncovered if poll_uncovered and pool else None,
                                uncovered_plan=uncovered_plan,
                                label=f"tenant {tenant.name}")
        self.coverage = NotificationCoverage(
            tenant.name, "polling" if pool is None else mode.value,
            pool.uncovered if pool is not None else None, clock,
            reconcile_interval=settings.teams_to_pbx.reconcile_interval.total_seconds())
        self.parts = TenantParts(app_client, writer_client, self.app_id, directory, changes,
                                 poller, ReadBack(poller, clock), pool)
        if pool is not None and changes is not None and webhook is not None:
            self.parts.users_subscription = UsersSubscription(
                app_client, clock, notification_url=webhook,
                lifecycle_url=webhook.rstrip("/") + "/lifecycle",
                tenant_id=str(tenant.tenant_id), app_id=str(reader.client_id),
                on_change=changes.wake,
                records=StoreMailboxRecords(store, tenant.name, "users", clock,
                                            self.ownership))
        self.parts.calendar = self._calendar(tenant_connections, reader, writer, graph_url)
        calendar = self.parts.calendar
        if calendar is not None and calendar.client is not None:
            self.parts.calendar_keeper = CalendarKeeper(store, calendar, clock,
                                                          writes=self.ownership)
        if calendar is not None and calendar.client is not None and use_webhooks and webhook:
            self.parts.calendar_subscriptions = CalendarSubscriptions(
                calendar.client, clock, calendar, notification_url=webhook,
                lifecycle_url=webhook.rstrip("/") + "/lifecycle",
                tenant_id=str(tenant.tenant_id), app_id=self.app_id,
                records=StoreMailboxRecords(store, tenant.name, "calendar", clock,
                                            self.ownership))
        self.parts.contacts = contacts_sync(self, tenant_connections, contacts,
                                            webhook if use_webhooks else None)
        if self.parts.contacts is not None:
            self.parts.contact_subscriptions = self.parts.contacts.notifications
            if self.parts.contacts.client is not None:
                self.parts.contacts_keeper = ContactsKeeper(
                    store, self.parts.contacts, clock, writes=self.ownership)
            directory.fetch_teams_users = feeding_directory(directory.fetch_teams_users,
                                                            self.parts.contacts)
            if changes is not None:
                changes.changes = feeding_changes(changes.changes, self.parts.contacts)
        for mailboxes in (self.parts.calendar_subscriptions, self.parts.contact_subscriptions):
            if mailboxes is not None:
                mailboxes.settled = self.people_known

    def people_known(self) -> bool:
        """Whether the directory has matched this tenant's people once (until then the
        people followed are not known, and kept subscriptions are not deleted)."""
        return self.parts.directory.status.last_success is not None

    def _calendar(self, tenant_connections: Sequence[Any], reader: Credential,
                  writer: Credential | None, graph_url: str) -> CalendarReader | None:
        plans = {c.name: calendar_plan(c.calendar) for c in tenant_connections}
        if not any(plans.values()):
            return None
        credential = credential_for(self.tenant, Permission.CALENDARS_READ)
        client: GraphClient | None = None
        unavailable = None
        if credential is None:
            unavailable = (f"no credential of tenant {self.tenant.name!r} is granted "
                           "calendars.read (add it to its permissions, and grant Calendars.Read "
                           "to the app)")
        elif credential is reader:
            client = self.parts.app_client
        elif credential is writer and self.parts.writer_client is not None:
            client = self.parts.writer_client
        else:
            self.sign_ins.append(WatchedTokens(
                AppTokenSource(self.authority, client_credential(credential)), self.clock,
                label=f"tenant {self.tenant.name} (credential {credential.name})"))
            self.sign_in_of[credential.name] = self.sign_ins[-1]
            client = GraphClient(self.sign_ins[-1], self.http, base_url=graph_url,
                                 clock=self.clock)

        def plan_for(person: Person) -> CalendarPlan | None:
            return plans.get(person.connection)

        return CalendarReader(self.tenant.name, client, self.hub, self.clock, plan_for,
                              unavailable=unavailable)

    def teams_user_ids(self) -> Sequence[str]:
        """Teams user ids of this tenant's people."""
        return [p.teams_user_id for p in self.hub.people() if p.tenant == self.tenant.name]

    def sync_now(self) -> None:
        """Start a full directory sync at once ("Sync now": CLI, API)."""
        self.parts.directory.sync_now()
        if self.parts.calendar is not None:
            self.parts.calendar.read_soon()
        if self.parts.contacts is not None:
            self.parts.contacts.read_soon()

    def people(self) -> list[Person]:
        """This tenant's matched people."""
        return self.parts.directory.people()

    def _pool(self, webhook: str, graph_url: str, store: Store,
              tokens: Mapping[str, TokenSource]) -> SubscriptionPool:
        lifecycle = webhook.rstrip("/") + "/lifecycle"
        certificate = (self.certificates.current if self.settings.teams_to_pbx.rich_notifications
                       else (lambda: None))
        endpoints = Endpoints(webhook, lifecycle, certificate)
        records = StoreSubscriptionRecords(store, self.tenant.name, self.clock, self.ownership)
        owners = []
        for account in self.tenant.service_accounts:
            source = tokens.get(account.upn)
            if source is None:
                credential = next(c for c in self.tenant.credentials
                                  if c.name == account.credential)
                if account.sign_in is not SignInMethod.PASSWORD or account.password is None:
                    log.warning("service account %s has no stored sign-in; run 'm365pbx "
                                "signin %s'", account.upn, account.upn)
                    continue
                source = ServiceAccountTokenSource(
                    self.authority, ClientCredential(str(credential.client_id)), account.upn,
                    password=account.password.get_secret_value())
            client = GraphClient(source, self.http, base_url=graph_url, clock=self.clock)
            owners.append(AccountOwner(account.upn, client, self.clock, records, endpoints,
                                       tenant_id=str(self.tenant.tenant_id), app_id=self.app_id))
        return SubscriptionPool(owners, label=f"tenant {self.tenant.name}", clock=self.clock)

    async def run(self) -> None:
        """Run the tenant's parts until cancelled (none if it is declared twice)."""
        parts = self.parts
        if not await self.identity.settle():
            return
        for owner in parts.pool.owners.values() if parts.pool is not None else ():
            # Graph's notifications and validation tokens name the tenant by its id.
            owner.tenant_id = str(self.identity.tenant_id)
        if parts.users_subscription is not None:
            parts.users_subscription.tenant_id = str(self.identity.tenant_id)
        for mailboxes in (parts.calendar_subscriptions, parts.contact_subscriptions):
            if mailboxes is not None:
                mailboxes.tenant_id = str(self.identity.tenant_id)
        # One part failing unexpectedly must not end the others (design.md rule 5).
        name = f"tenant {self.tenant.name}:"
        async with asyncio.TaskGroup() as group:
            group.create_task(supervised(f"{name} directory sync", parts.directory.run,
                                         self.clock, on_failure=self._directory_failed))
            if parts.changes is not None:
                group.create_task(supervised(f"{name} directory changes", parts.changes.run,
                                             self.clock))
            if parts.users_subscription is not None:
                group.create_task(supervised(f"{name} users change notifications",
                                             parts.users_subscription.run, self.clock))
            group.create_task(supervised(f"{name} presence polling", parts.poller.run,
                                         self.clock, on_failure=self._poller_failed))
            group.create_task(supervised(f"{name} read-back", parts.readback.run, self.clock))
            if parts.calendar is not None:
                group.create_task(supervised(f"{name} calendar", parts.calendar.run, self.clock,
                                             on_failure=self._calendar_failed))
            if parts.calendar_keeper is not None:
                group.create_task(supervised(f"{name} calendar blocks kept",
                                             parts.calendar_keeper.run, self.clock))
            if parts.calendar_subscriptions is not None:
                group.create_task(supervised(f"{name} calendar change notifications",
                                             parts.calendar_subscriptions.run, self.clock))
            if parts.contacts is not None:
                group.create_task(supervised(f"{name} contacts", parts.contacts.run,
                                             self.clock))
            if parts.contacts_keeper is not None:
                group.create_task(supervised(f"{name} contacts kept",
                                             parts.contacts_keeper.run, self.clock))
            else:
                group.create_task(supervised(
                    f"{name} kept contacts forgotten",
                    functools.partial(forget_contacts, self.store, self.tenant.name),
                    self.clock))
            if parts.contact_subscriptions is not None:
                group.create_task(supervised(f"{name} contact change notifications",
                                             parts.contact_subscriptions.run, self.clock))
            if parts.pool is not None:
                group.create_task(supervised(f"{name} subscriptions", parts.pool.run,
                                             self.clock))
                group.create_task(supervised(f"{name} coverage", self.coverage.run,
                                             self.clock))

    def _directory_failed(self, message: str) -> None:
        self.parts.directory.status.last_error = message

    def _calendar_failed(self, message: str) -> None:
        if self.parts.calendar is not None:
            self.parts.calendar.status.last_error = message

    def _poller_failed(self, message: str) -> None:
        self.parts.poller.last_error = message
