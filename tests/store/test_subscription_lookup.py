"""A node that does not run a tenant finds its event, contact and users subscriptions by id
(docs/cluster.md): one query per id, answers kept briefly, at most one query per id per
second however many notifications name it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from m365pbx.service.persistence import StoreMailboxRecords
from m365pbx.service.subscription_lookup import StoredMailboxSubscription, SubscriptionLookup
from m365pbx.store import Store, TenantSpec
from m365pbx.sync.mailbox_records import MailboxRecord
from m365sim.clock import VirtualClock
from tests.store.helpers import NOW


async def kept(store: Store, kind: str, user: str, graph_id: str) -> None:
    await StoreMailboxRecords(store, "contoso", kind, VirtualClock()).save(
        [MailboxRecord(user, graph_id, f"users/{user}/events", NOW + timedelta(days=1),
                       f"secret-{graph_id}")], [])


async def test_found_once_and_kept_unknown_ids_asked_again_after_a_second(
        store: Store) -> None:
    async with store.transaction() as tx:
        await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
    await kept(store, "calendar", "anna", "c-anna")
    lookup = SubscriptionLookup(store, again_after=0.3, keep_for=60.0)

    # Twenty notifications naming the same id at once: one query between them.
    found = await asyncio.gather(*(lookup.find("c-anna") for _ in range(20)))
    assert set(found) == {StoredMailboxSubscription("contoso", "calendar", "secret-c-anna")}
    assert "secret" not in repr(found[0])
    assert lookup.counters["queries"] == 1
    assert await lookup.find("c-anna") == found[0]  # kept
    assert lookup.counters["queries"] == 1

    # An id nobody knows: asked once, then not again within `again_after`...
    assert await lookup.find("k-ben") is None
    assert await lookup.find("k-ben") is None
    assert lookup.counters["queries"] == 2
    # ... and after it, so a subscription kept a moment ago is found.
    await kept(store, "contacts", "ben", "k-ben")
    await asyncio.sleep(0.35)
    assert await lookup.find("k-ben") == StoredMailboxSubscription("contoso", "contacts",
                                                                   "secret-k-ben")
    assert lookup.counters["queries"] == 3
    assert lookup.remembered("k-ben") is not None and lookup.remembered("other") is None
