"""Webhook notifications on any node (docs/cluster.md): the receiving node checks them and
hands those of a tenant another node runs to that node through PostgreSQL.

The receiving node knows every presence subscription from the store (their client states
are there, encrypted) and looks the event, contact and users ones up by id
(service/subscription_lookup.py), so it checks client state and validation tokens itself,
writes the notifications into `webhook_handoffs` and `pg_notify`s the tenant's name, then
answers Graph's 202: the row is committed before the answer, or Graph gets a 503 and retries.
The holder LISTENs; each wake-up, a round every few seconds (a lost NOTIFY, a dropped
listening connection) and each takeover drain its tenants' rows into its receiver, fenced
by its lease. Rows nobody takes within `lifetime` expire: the holder that finds them drops
them and reads all its people back from Graph (one batched read), the reconciliation
that replaces what they carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from m365pbx.clock import Clock
from m365pbx.core.status import PartState, PartStatus
from m365pbx.service.leases import Ownership
from m365pbx.service.pg_listen import Listener, listen
from m365pbx.service.subscription_lookup import SubscriptionLookup
from m365pbx.store import HANDOFF_CHANNEL, FencedOut, HandedOff, Repositories, Store
from m365pbx.store.tables import Subscription, Tenant
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription

__all__ = ["HandoffTenant", "WebhookHandoff"]

log = logging.getLogger(__name__)

ROUND_EVERY = 5.0  # seconds between drains without a NOTIFY
RELOAD_AFTER = 1.0  # an unknown subscription id reloads the stored ones at most this often
TAKE = 100  # rows per transaction
FIX = ("Check this node's connection to the PostgreSQL server; Graph retries what was "
       "refused, and the holder reads its people back when handed notifications expire")


class HandoffTenant:
    """What the handoff needs of one tenant: whether this node runs it (and is ready for
    notifications), its lease, Graph's names for it, where notifications go, a full read,
    and whether its keeper may act now."""

    def __init__(self, name: str, *, ownership: Ownership | None,
                 ready: Callable[[], bool], names: Callable[[], tuple[str | None, str]],
                 deliver: Callable[[str, Callable[[str], KnownSubscription | None]], int],
                 read_everyone: Callable[[], None],
                 may_act: Callable[[], bool] = lambda: True) -> None:
        self.name = name
        self.ownership = ownership
        self.ready = ready
        self.names = names  # (Entra tenant id once known, app id)
        self.deliver = deliver
        self.read_everyone = read_everyone
        self.may_act = may_act  # the keeper's: false at once after a pause (NATS transport)


class WebhookHandoff:
    """The receiver's `Elsewhere` port and the holder's drain (one per node)."""

    def __init__(self, store: Store, node: str, clock: Clock, *, lifetime: float,
                 tenants: Callable[[], Iterable[HandoffTenant]]) -> None:
        self.store = store
        self.node = node
        self.clock = clock
        self.lifetime = lifetime
        self.tenants = tenants
        self.counters: Counter[str] = Counter()
        self.backlog: dict[str, int] = {}
        self.error: str | None = None
        self.listen_error: str | None = None
        self.since: datetime | None = None
        self.listening = False
        self._stored: dict[str, tuple[str, str]] = {}  # subscription id -> tenant, secret
        self._loaded_at = float("-inf")
        self._loading: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self.lookup = SubscriptionLookup(store)

    # --- the receiving node -------------------------------------------------------------------
    async def known(self, subscription_id: str) -> KnownSubscription | None:
        """A stored subscription of ours (presence, users, events, contacts), whichever
        node's tenant holds it."""
        found = self._stored.get(subscription_id)
        kind = "presence"
        if found is None:
            async with asyncio.timeout(1.5):  # Graph wants its answer within 3 s
                # Mailbox and users subscriptions by id (one indexed query), then the
                # presence ones (all reloaded: a few per service account).
                mailbox = await self.lookup.find(subscription_id)
                if mailbox is None:
                    await self._refresh()
            if mailbox is not None:
                found, kind = (mailbox.tenant, mailbox.client_state), mailbox.kind
            else:
                found = self._stored.get(subscription_id)
        if found is None:
            return None
        tenant = self._tenant(found[0])
        if tenant is None:
            return None
        tenant_id, app_id = tenant.names()
        if tenant_id is None:
            # A tenant named by domain: resolved only where it runs. Ignored like an
            # unknown subscription (the holder's poll reconciles).
            self.counters["unresolved_tenant"] += 1
            return None
        return KnownSubscription(subscription_id, found[1], tenant_id, app_id, kind)

    def _tenant_of(self, subscription_id: str) -> str:
        """The tenant (its name) of a subscription `known` found a moment ago."""
        stored = self._stored.get(subscription_id)
        if stored is not None:
            return stored[0]
        mailbox = self.lookup.remembered(subscription_id)
        if mailbox is None:
            raise LookupError(f"subscription {subscription_id} is no longer known here")
        return mailbox.tenant

    async def _refresh(self) -> None:
        """Reload the stored subscriptions once for every miss waiting now: at most once per
        RELOAD_AFTER (ids nobody knows cost one query a second, not one each), and never
        skipped (a subscription created a moment ago is found)."""
        task = self._loading
        if task is None or task.done():
            task = self._loading = asyncio.ensure_future(self._load_when_allowed())
        await asyncio.shield(task)

    async def _load_when_allowed(self) -> None:
        wait = self._loaded_at + RELOAD_AFTER - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await self._load()

    async def _load(self) -> None:
        self._loaded_at = time.monotonic()
        async with self.store.transaction() as tx:
            rows = (await tx.session.execute(
                select(Subscription, Tenant.name).join(Tenant,
                                                       Subscription.tenant_id == Tenant.id)
            )).all()
            self._stored = {row.graph_subscription_id: (name, tx.subscriptions.client_state(row))
                            for row, name in rows}

    def _tenant(self, name: str) -> HandoffTenant | None:
        return next((t for t in self.tenants() if t.name == name), None)

    async def hand_off(self, entries: list[tuple[KnownSubscription, dict[str, Any]]]) -> None:
        """Write checked notifications for their tenants' holders (one row per tenant)."""
        by_tenant: dict[str, list[dict[str, Any]]] = {}
        kinds: Counter[str] = Counter()
        for known, raw in entries:
            by_tenant.setdefault(self._tenant_of(known.id), []).append(raw)
            kinds[known.kind] += 1

        async def work(tx: Repositories) -> None:
            for tenant, values in by_tenant.items():
                await tx.handoffs.add(tenant, json.dumps({"value": values}),
                                      notifications=len(values), received_by=self.node,
                                      lifetime=self.lifetime)

        # Graph wants an answer within 3 s: past 1.5 s a 503 (it retries) beats a late 202.
        async with asyncio.timeout(1.5):
            await self.store.write(work, what="notifications for another node")
        self.counters["handed_off"] += len(entries)
        for kind, count in kinds.items():
            if kind != "presence":
                self.counters[f"handed_off_{kind}"] += count

    # --- the holder ---------------------------------------------------------------------------
    def wake(self) -> None:
        """Drain now (a NOTIFY, a takeover)."""
        self._wake.set()

    async def run(self) -> None:
        """Listen for handed notifications and drain them until cancelled."""
        listener = None
        try:
            while True:
                if listener is None or listener[1].is_closed():
                    listener = await self._listen(listener)
                await self.drain()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ROUND_EVERY):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener[0].close()

    async def _listen(self, old: Listener | None) -> Listener | None:
        """A pooled connection LISTENing on the channel, and its asyncpg connection."""
        self.listening = False
        try:
            found = await listen(self.store, {HANDOFF_CHANNEL: self._wake.set}, old)
        except Exception as exc:
            error = (f"cannot LISTEN for handed notifications (taking them every "
                     f"{ROUND_EVERY:.0f} s instead): {type(exc).__name__}: {exc}")
            if error != self.listen_error:
                log.error("%s", error)
                self.since = self.clock.now()
            self.listen_error = error
            return None
        if self.listen_error is not None:
            log.info("listening for handed notifications again")
            self.listen_error, self.since = None, self.clock.now()
        self.listening = found is not None
        return found

    async def drain(self) -> None:
        """Take the rows of every tenant this node holds and is ready for."""
        try:
            for tenant in list(self.tenants()):
                ownership = tenant.ownership
                if ownership is not None and ownership.lease is not None and tenant.ready():
                    await self._drain(tenant, ownership)
            async with self.store.transaction() as tx:
                self.backlog = await tx.handoffs.backlog()
        except Exception as exc:
            self._failed(f"cannot take handed notifications: {type(exc).__name__}: {exc}")
            return
        if self.error is not None:
            log.info("handed notifications are taken again")
            self.error, self.since = None, self.clock.now()

    async def _drain(self, tenant: HandoffTenant, ownership: Ownership) -> None:
        def fallback(subscription_id: str) -> KnownSubscription | None:
            # Not in this node's pool yet (a takeover): still a presence subscription here.
            tenant_id, app_id = tenant.names()
            if subscription_id not in self._stored or tenant_id is None:
                return None
            return KnownSubscription(subscription_id, "", tenant_id, app_id)

        async def take(tx: Repositories) -> tuple[int, list[HandedOff]]:
            return (await tx.handoffs.drop_expired(tenant.name),
                    await tx.handoffs.take(tenant.name, TAKE))

        while True:
            try:
                expired, taken = await ownership.write(
                    take, what=f"handed notifications of tenant {tenant.name}")
            except FencedOut:
                return  # no longer ours: the new holder takes them
            if taken:
                await self._load()  # the receiving node may know newer subscriptions
            for row in taken:
                self.counters["taken"] += tenant.deliver(row.body, fallback)
            if expired:
                self.counters["expired"] += expired
                log.warning("%d notification(s) handed over for tenant %s expired before this "
                            "node took them: reading all its people back from Graph",
                            expired, tenant.name)
                tenant.read_everyone()
            if len(taken) < TAKE:
                return

    def _failed(self, error: str) -> None:
        if error != self.error:
            log.error("%s", error)
            self.since = self.clock.now()
        self.error = error

    def statuses(self) -> list[PartStatus]:
        """The part `webhook/handoff`: handed off (in all, and of users, event and contact
        subscriptions), taken, expired, waiting (the backlog), mailbox and users
        subscriptions looked up by id."""
        counters = {"handed_off": self.counters["handed_off"], "taken": self.counters["taken"],
                    "expired": self.counters["expired"],
                    **{f"handed_off_{kind}": self.counters[f"handed_off_{kind}"]
                       for kind in ("users", "calendar", "contacts")},
                    "looked_up": self.lookup.counters["queries"],
                    "backlog": sum(self.backlog.values()), "listening": int(self.listening)}
        error = self.error or self.listen_error
        state = PartState.DEGRADED if error is not None else PartState.OK
        return [PartStatus("webhook/handoff", "handoff", state, self.since, error,
                           FIX if error else None, counters)]
