"""The store behind the sync layer's persistence protocols."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from m365pbx.clock import Clock
from m365pbx.core.matching import MatchResult
from m365pbx.service.leases import Writes
from m365pbx.store import (
    MailboxSubscriptionRecord,
    MatchStatus,
    PersonRecord,
    Repositories,
    Store,
)
from m365pbx.sync.directory import StoredPerson
from m365pbx.sync.mailbox_records import MailboxRecord
from m365pbx.sync.teams_to_pbx.records import SubscriptionRecord


def _records(result: MatchResult, tenant_id: int,
             teams_users: Mapping[str, Mapping[str, Any]]) -> list[PersonRecord]:
    records: list[PersonRecord] = []
    for match in result.matched:
        user = teams_users.get(match.teams, {})
        records.append(PersonRecord(
            status=MatchStatus.MATCHED, pbx_key=match.pbx, tenant_id=tenant_id,
            teams_user_id=match.teams, rule=match.rule,
            display_name=str(user.get("displayName") or match.pbx),
        ))
    for item in result.unmatched:
        if item.side == "pbx":
            records.append(PersonRecord(status=MatchStatus.UNMATCHED, pbx_key=item.key,
                                        reason=item.reason, display_name=item.key))
        else:
            user = teams_users.get(item.key, {})
            records.append(PersonRecord(
                status=MatchStatus.UNMATCHED, tenant_id=tenant_id, teams_user_id=item.key,
                reason=item.reason, display_name=str(user.get("displayName") or item.key),
            ))
    for ambiguous in result.ambiguous:
        records.append(PersonRecord(
            status=MatchStatus.AMBIGUOUS, pbx_key=ambiguous.pbx, reason=ambiguous.reason,
            candidates=[{"id": candidate} for candidate in ambiguous.candidates],
            display_name=ambiguous.pbx,
        ))
    return records


class StorePeople:
    """PeopleStore on the store's people table."""

    def __init__(self, store: Store, tenant: str, writes: Writes | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self.writes: Writes = writes or store  # an Ownership fences them (several nodes)

    async def replace(self, connection: str, result: MatchResult,
                      teams_users: Mapping[str, Mapping[str, Any]]) -> list[StoredPerson]:
        """Store one connection's match result; return its matched people with their ids."""
        async def work(tx: Repositories) -> list[StoredPerson]:
            tenant = await tx.tenants.require(self.tenant, needed_by=f"connection {connection}")
            row = await tx.pbx_connections.find(connection)
            if row is None:
                raise LookupError(f"PBX connection {connection!r} is not in the store")
            # The records are an argument only, so they are freed before the read below.
            if result.matched or result.unmatched or result.ambiguous:
                await tx.people.replace_for_connection(
                    row.id, _records(result, tenant.id, teams_users))
            matched = await tx.people.summaries_for_connection(row.id,
                                                                status=MatchStatus.MATCHED)
            return [StoredPerson(p.id, p.pbx_key or "", p.teams_user_id or "", p.display_name)
                    for p in matched if p.pbx_key and p.teams_user_id]

        return await self.writes.write(work, what=f"the people of connection {connection}")


class StoreSubscriptionRecords:
    """SubscriptionRecords on the store's subscriptions table, keyed by account UPN."""

    def __init__(self, store: Store, tenant: str, clock: Clock,
                 writes: Writes | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self.clock = clock
        self.writes: Writes = writes or store  # an Ownership fences them (several nodes)

    async def load(self, account: str) -> list[SubscriptionRecord]:
        """Subscriptions recorded for this service account."""
        async with self.store.transaction() as tx:
            row = await tx.service_accounts.find(account)
            if row is None:
                return []
            return [
                SubscriptionRecord(s.graph_subscription_id, account, s.resource, s.expires_at,
                                   tx.subscriptions.client_state(s))
                for s in await tx.subscriptions.list_for_service_account(row.id)
            ]

    async def save(self, record: SubscriptionRecord) -> None:
        """Record a new subscription, or a new expiry of a known one (retried, never dropped)."""
        async def work(tx: Repositories) -> None:
            existing = await tx.subscriptions.get(record.graph_id)
            if existing is not None and existing.resource == record.resource:
                await tx.subscriptions.renew(record.graph_id, expires_at=record.expires,
                                             now=self.clock.now())
                return
            account = await tx.service_accounts.find(record.account)
            tenant = await tx.tenants.require(self.tenant, needed_by=record.account)
            if account is None:
                raise LookupError(f"service account {record.account!r} is not in the store")
            await tx.subscriptions.save(record.graph_id, tenant_id=tenant.id,
                                        service_account_id=account.id, resource=record.resource,
                                        expires_at=record.expires,
                                        client_state=record.client_state, now=self.clock.now())

        await self.writes.write(work, what=f"the subscription of {record.account}")

    async def delete(self, graph_id: str) -> None:
        """Forget a subscription."""
        await self.writes.write(lambda tx: tx.subscriptions.delete(graph_id),
                               what=f"the removal of subscription {graph_id}")


class StoreMailboxRecords:
    """MailboxRecords on the store's mailbox_subscriptions table, for one tenant and kind."""

    CHUNK = 500  # people per transaction: short write locks on SQLite

    def __init__(self, store: Store, tenant: str, kind: str, clock: Clock,
                 writes: Writes | None = None) -> None:
        self.store = store
        self.tenant = tenant
        self.kind = kind
        self.clock = clock
        self.writes: Writes = writes or store  # an Ownership fences them (several nodes)

    async def load(self) -> list[MailboxRecord]:
        """Every kept subscription of the tenant and kind."""
        async with self.store.transaction() as tx:
            tenant = await tx.tenants.find(self.tenant)
            if tenant is None:
                return []
            return [MailboxRecord(r.user_id, r.graph_subscription_id, r.resource, r.expires_at,
                                  r.client_state)
                    for r in await tx.mailbox_subscriptions.load(tenant.id, self.kind)]

    async def save(self, keep: Sequence[MailboxRecord], forget: Sequence[str]) -> None:
        """Record these subscriptions and forget those of the people in `forget` (retried,
        a chunk of people per transaction)."""
        now = self.clock.now()
        for start in range(0, max(len(keep), len(forget)), self.CHUNK):
            await self.writes.write(
                functools.partial(self._save, keep=keep[start:start + self.CHUNK],
                                  forget=forget[start:start + self.CHUNK], now=now),
                what=f"the {self.kind} subscriptions of tenant {self.tenant}")

    async def _save(self, tx: Repositories, *, keep: Sequence[MailboxRecord],
                    forget: Sequence[str], now: datetime) -> None:
        tenant = await tx.tenants.require(self.tenant, needed_by=f"{self.kind} subscriptions")
        await tx.mailbox_subscriptions.delete(tenant.id, self.kind, forget)
        await tx.mailbox_subscriptions.save(tenant.id, self.kind, [
            MailboxSubscriptionRecord(r.user_id, r.graph_id, r.resource, r.expires,
                                      r.client_state) for r in keep], now=now)
