"""Subscriptions survive a restart: save, renew, find the ones to renew, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import (
    NotFoundError,
    SecretBox,
    ServiceAccountSpec,
    SignInMethod,
    Store,
    TenantSpec,
)
from tests.store.helpers import NOW, raw_value

CLIENT_STATE = "client-state-secret-do-not-leak"


async def setup(store: Store) -> tuple[int, int]:
    async with store.transaction() as tx:
        tenant = await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
        account = await tx.service_accounts.create(
            ServiceAccountSpec("svc@contoso.com", "contoso", SignInMethod.DEVICE_CODE)
        )
        return tenant.id, account.id


async def save(store: Store, graph_id: str, expires_in: timedelta) -> None:
    tenant, account = await setup(store) if graph_id == "first" else (None, None)
    async with store.transaction() as tx:
        if tenant is None:
            found = await tx.service_accounts.find("svc@contoso.com")
            assert found is not None
            tenant, account = found.tenant_id, found.id
        assert account is not None
        await tx.subscriptions.save(
            graph_id,
            tenant_id=tenant,
            service_account_id=account,
            resource="/communications/presences?$filter=id in ('a')",
            expires_at=NOW + expires_in,
            client_state=CLIENT_STATE,
            now=NOW,
        )


async def test_save_get_and_client_state_encrypted(
    store: Store, engine: AsyncEngine, box: SecretBox
) -> None:
    await save(store, "first", timedelta(minutes=60))
    async with store.transaction() as tx:
        row = await tx.subscriptions.get("first")
        assert row is not None
        assert (row.expires_at, row.created_at, row.renewed_at) == (
            NOW + timedelta(minutes=60),
            NOW,
            None,
        )
        assert tx.subscriptions.client_state(row) == CLIENT_STATE
        assert CLIENT_STATE not in repr(row)
    stored = await raw_value(engine, "subscriptions", "client_state_encrypted")
    assert isinstance(stored, str) and CLIENT_STATE not in stored
    assert box.decrypt(stored, what="client state") == CLIENT_STATE


async def test_renew_and_list_expiring_before(store: Store) -> None:
    await save(store, "first", timedelta(minutes=10))
    await save(store, "second", timedelta(minutes=50))
    await save(store, "third", timedelta(minutes=5))
    async with store.transaction() as tx:
        due = await tx.subscriptions.list_expiring_before(NOW + timedelta(minutes=15))
        assert [s.graph_subscription_id for s in due] == ["third", "first"]
        renewed = await tx.subscriptions.renew(
            "third", expires_at=NOW + timedelta(minutes=70), now=NOW + timedelta(minutes=1)
        )
        assert renewed.renewed_at == NOW + timedelta(minutes=1)
    async with store.transaction() as tx:
        due = await tx.subscriptions.list_expiring_before(NOW + timedelta(minutes=15))
        assert [s.graph_subscription_id for s in due] == ["first"]
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        owned = await tx.subscriptions.list_for_service_account(account.id)
        assert [s.graph_subscription_id for s in owned] == ["first", "second", "third"]


async def test_delete_and_missing(store: Store) -> None:
    await save(store, "first", timedelta(minutes=10))
    async with store.transaction() as tx:
        assert await tx.subscriptions.delete("first") is True
        assert await tx.subscriptions.delete("first") is False
        assert await tx.subscriptions.get("first") is None
        with pytest.raises(NotFoundError, match="subscription 'first'"):
            await tx.subscriptions.renew("first", expires_at=NOW, now=NOW)


async def test_save_replaces_a_row_with_the_same_graph_id(store: Store) -> None:
    await save(store, "first", timedelta(minutes=10))
    await save(store, "first-again", timedelta(minutes=10))
    async with store.transaction() as tx:
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        await tx.subscriptions.save(
            "first",
            tenant_id=account.tenant_id,
            service_account_id=account.id,
            resource="/other",
            expires_at=NOW + timedelta(hours=1),
            client_state="new-state",
            now=NOW + timedelta(minutes=2),
        )
    async with store.transaction() as tx:
        rows = await tx.subscriptions.list_all()
        assert sorted(r.graph_subscription_id for r in rows) == ["first", "first-again"]
        first = await tx.subscriptions.get("first")
        assert first is not None and first.resource == "/other"
        assert tx.subscriptions.client_state(first) == "new-state"


async def test_deleting_the_service_account_deletes_its_subscriptions(store: Store) -> None:
    await save(store, "first", timedelta(minutes=10))
    async with store.transaction() as tx:
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        await tx.service_accounts.delete(account.id)
    async with store.transaction() as tx:
        assert await tx.subscriptions.list_all() == []
