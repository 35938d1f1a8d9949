"""Contacts in the service: one index for all tenants, each tenant's sync, the API, metrics.

`ContactsBook` is what app.py holds: the shared ContactIndex (each person's contacts and
each tenant's shared sources apart inside it), the counters of the API, and the tenants'
ContactsSync. `contacts_sync` builds a tenant's sync from its connections' `contacts:`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from m365pbx.core.contacts import ContactIndex, Source, Viewer
from m365pbx.core.credentials import Permission
from m365pbx.graph.auth import AppTokenSource
from m365pbx.graph.client import GraphClient
from m365pbx.graph.users import DeltaResult
from m365pbx.pbx.api.contacts import ContactCounters, contacts_router
from m365pbx.pbx.api.keys import ApiKeyChecker
from m365pbx.service.persistence import StoreMailboxRecords
from m365pbx.sync.contacts import ContactsPlan, ContactsSync, ContactSubscriptions
from m365pbx.sync.people import Person
from m365pbx.sync.signin import WatchedTokens

if TYPE_CHECKING:
    from m365pbx.service.tenant import TenantRuntime

# The Teams user properties the directory source reads (besides what matching reads).
DIRECTORY_PROPERTIES = frozenset({"id", "displayName", "givenName", "surname", "mail",
                                  "businessPhones", "mobilePhone", "accountEnabled"})


def contacts_plan(connection: Any) -> ContactsPlan | None:
    """The plan of a connection's `contacts:` settings (None: off)."""
    settings = connection.contacts
    if not settings.enabled:
        return None
    sources = frozenset(source for source, on in (
        (Source.PERSONAL, settings.personal), (Source.DIRECTORY, settings.directory),
        (Source.ORGANISATION, settings.organisation)) if on)
    region = settings.phone_region or connection.matching.phone_region or "US"
    return ContactsPlan(sources, region, settings.poll_interval.total_seconds(),
                        notifications=settings.notifications == "auto")


def directory_properties(connections: Sequence[Any]) -> frozenset[str]:
    """The Teams user properties the contacts of these connections need from the directory."""
    wanted = any(c.contacts.enabled and c.contacts.directory for c in connections)
    return DIRECTORY_PROPERTIES if wanted else frozenset()


class ContactsBook:
    """The service's contact index, its API counters and every tenant's sync."""

    def __init__(self) -> None:
        self.index = ContactIndex()
        self.counters = ContactCounters()
        self.syncs: dict[str, ContactsSync] = {}

    def viewers(self, key: str, connection: str | None) -> list[Viewer]:
        """What the person(s) with this PBX key may see, over every tenant."""
        return [viewer for sync in self.syncs.values() for viewer in sync.viewers(key, connection)]

    def router(self, keys: ApiKeyChecker) -> APIRouter:
        """The `/api/v1/contacts` and `/api/v1/lookup` routes."""
        return contacts_router(self.index, self.viewers, keys, self.counters)

    def health(self) -> dict[str, object]:
        """What /healthz shows: each tenant's sync and the index size."""
        return {"tenants": {name: sync.health() for name, sync in self.syncs.items()},
                "entries": self.index.size()}

    def metrics(self) -> Iterator[Metric]:
        """Searches, lookups and their hits, index size, reads."""
        counts = self.counters
        searches = CounterMetricFamily("m365pbx_contact_searches", "Contact searches answered")
        searches.add_metric([], counts.searches)
        lookups = CounterMetricFamily("m365pbx_contact_lookups",
                                      "Caller lookups by outcome", labels=["outcome"])
        lookups.add_metric(["found"], counts.lookup_hits)
        lookups.add_metric(["unknown"], counts.lookups - counts.lookup_hits)
        ratio = GaugeMetricFamily("m365pbx_contact_lookup_hit_ratio",
                                  "Share of caller lookups that found a name")
        ratio.add_metric([], counts.lookup_hits / counts.lookups if counts.lookups else 0.0)
        size = GaugeMetricFamily("m365pbx_contact_index_entries", "Contacts in the index",
                                 labels=["source"])
        for source, count in self.index.size().items():
            size.add_metric([source], count)
        reads = CounterMetricFamily("m365pbx_contact_reads", "Contact folder reads by outcome",
                                    labels=["tenant", "outcome"])
        subscriptions = GaugeMetricFamily(
            "m365pbx_contact_subscriptions",
            "Contact change subscriptions by state (active, missing)", labels=["tenant", "state"])
        notified = CounterMetricFamily("m365pbx_contact_notifications",
                                       "Contact change notifications received", labels=["tenant"])
        restored = GaugeMetricFamily(
            "m365pbx_contact_books_restored",
            "People whose own contacts came back from the store at start", labels=["tenant"])
        for name, sync in self.syncs.items():
            reads.add_metric([name, "ok"], sync.status.reads)
            reads.add_metric([name, "failed"], sync.status.failed_reads)
            restored.add_metric([name], sync.status.restored)
            if sync.notifications is not None:
                held = sync.notifications.health()
                subscriptions.add_metric([name, "active"], held["active"])
                subscriptions.add_metric([name, "missing"], held["missing"])
                notified.add_metric([name], sync.notifications.notifications)
        yield from (searches, lookups, ratio, size, reads, subscriptions, notified, restored)


def contacts_sync(runtime: TenantRuntime, connections: Sequence[Any],
                  book: ContactsBook | None, webhook: str | None = None) -> ContactsSync | None:
    """The tenant's ContactsSync (None when no connection switches contacts on), with its
    change notifications where `webhook` (the public URL in webhook mode) is given."""
    plans = {c.name: contacts_plan(c) for c in connections}
    if book is None or not any(plans.values()):
        return None
    from m365pbx.service.tenant import client_credential, credential_for

    tenant = runtime.tenant
    credential = credential_for(tenant, Permission.CONTACTS_READ)
    reader = (credential_for(tenant, Permission.PRESENCE_READ)
              or credential_for(tenant, Permission.USERS_READ))
    client: GraphClient | None = None
    unavailable = None
    if credential is None:
        unavailable = (f"no credential of tenant {tenant.name!r} is granted contacts.read "
                       "(add it to its permissions, and grant Contacts.Read to the app)")
    elif credential is reader:
        client = runtime.parts.app_client
    else:
        tokens = WatchedTokens(AppTokenSource(runtime.authority, client_credential(credential)),
                               runtime.clock,
                               label=f"tenant {tenant.name} (credential {credential.name})")
        runtime.sign_ins.append(tokens)
        client = GraphClient(tokens, runtime.http,
                             base_url=str(runtime.settings.microsoft.graph_url).rstrip("/"),
                             clock=runtime.clock)

    def plan_for(person: Person) -> ContactsPlan | None:
        return plans.get(person.connection)

    region = next((plan.region for plan in plans.values() if plan is not None), "US")
    sync = ContactsSync(tenant.name, client, book.index, runtime.hub, runtime.clock, plan_for,
                        region=region, unavailable=unavailable)
    book.syncs[tenant.name] = sync
    contact_subscriptions(runtime, sync, webhook, any(
        plan is not None and plan.notifications and Source.PERSONAL in plan.sources
        for plan in plans.values()))
    return sync


def contact_subscriptions(runtime: TenantRuntime, sync: ContactsSync, webhook: str | None,
                          wanted: bool) -> ContactSubscriptions | None:
    """The subscriptions on people's contacts (None, with the reason in the sync's health,
    where the service has no public webhook or no connection wants them)."""
    if sync.client is None:
        sync.notifications_off = sync.unavailable
        return None
    if not wanted:
        sync.notifications_off = ("contacts.notifications is off (or personal contacts are "
                                  "off) on every connection")
        return None
    if webhook is None:
        sync.notifications_off = ("no public webhook (public_url unset, or teams_to_pbx.mode "
                                  "polling): contacts are read every contacts.poll_interval")
        return None
    records = StoreMailboxRecords(runtime.store, runtime.tenant.name, "contacts", runtime.clock,
                                  runtime.ownership)
    return ContactSubscriptions(sync.client, runtime.clock, sync, notification_url=webhook,
                                lifecycle_url=webhook.rstrip("/") + "/lifecycle",
                                tenant_id=str(runtime.tenant.tenant_id), app_id=runtime.app_id,
                                records=records)


def feeding_directory(fetch: Callable[[], Awaitable[list[dict[str, Any]]]],
                      sync: ContactsSync) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
    """Wrap the directory sync's read of Teams users so the contacts' directory follows it."""
    async def read() -> list[dict[str, Any]]:
        users = await fetch()
        if users:
            sync.set_directory(users)
        return users

    return read


def feeding_changes(fetch: Callable[[str], Awaitable[DeltaResult]],
                    sync: ContactsSync) -> Callable[[str], Awaitable[DeltaResult]]:
    """Wrap the directory's delta rounds so the contacts' directory follows them too."""
    async def read(link: str) -> DeltaResult:
        result = await fetch(link)
        sync.apply_directory_changes(result.changed, result.removed)
        return result

    return read
