"""Each person's event and contact subscriptions survive a restart: saved per tenant, kind
and person, replaced, forgotten, the client state encrypted (issues 22 and 23)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.service.persistence import StoreMailboxRecords
from m365pbx.store import MailboxSubscriptionRecord, SecretBox, Store, TenantSpec
from m365pbx.sync.mailbox_records import MailboxRecord
from m365sim.clock import VirtualClock
from tests.store.helpers import NOW, raw_value

CLIENT_STATE = "mailbox-client-state-do-not-leak"


def records(store: Store, tenant: str = "contoso", kind: str = "calendar") -> StoreMailboxRecords:
    return StoreMailboxRecords(store, tenant, kind, VirtualClock())


def record(user: str, graph_id: str, *, hours: float = 24) -> MailboxRecord:
    return MailboxRecord(user, graph_id, f"users/{user}/events", NOW + timedelta(hours=hours),
                         f"{CLIENT_STATE}-{graph_id}")


async def tenant(store: Store, name: str = "contoso") -> int:
    async with store.transaction() as tx:
        return (await tx.tenants.create(TenantSpec(name, f"{name}-id"))).id


async def test_saved_and_loaded_with_the_client_state_encrypted(
    store: Store, engine: AsyncEngine, box: SecretBox
) -> None:
    tenant_id = await tenant(store)
    async with store.transaction() as tx:
        await tx.mailbox_subscriptions.save(tenant_id, "calendar", [MailboxSubscriptionRecord(
            "A1B2", "sub-1", "users/A1B2/events", NOW + timedelta(days=1), CLIENT_STATE)],
            now=NOW)
    async with store.transaction() as tx:
        (loaded,) = await tx.mailbox_subscriptions.load(tenant_id, "calendar")
        assert loaded == MailboxSubscriptionRecord("a1b2", "sub-1", "users/A1B2/events",
                                                   NOW + timedelta(days=1), CLIENT_STATE)
        assert CLIENT_STATE not in repr(loaded)
        assert await tx.mailbox_subscriptions.load(tenant_id, "contacts") == []
    stored = await raw_value(engine, "mailbox_subscriptions", "client_state_encrypted")
    assert isinstance(stored, str) and CLIENT_STATE not in stored
    assert box.decrypt(stored, what="client state") == CLIENT_STATE


async def test_records_per_tenant_and_kind_replaced_and_forgotten(store: Store) -> None:
    await tenant(store)
    await tenant(store, "fabrikam")
    calendar = records(store, "contoso", "calendar")
    contacts = records(store, "contoso", "contacts")
    other = records(store, "fabrikam", "calendar")
    await calendar.save([record("anna", "c-anna"), record("ben", "c-ben")], [])
    await contacts.save([record("anna", "k-anna")], [])
    await other.save([record("anna", "f-anna")], [])
    # Anna's calendar subscription was made again, Ben is no longer followed.
    await calendar.save([record("anna", "c-anna-2", hours=20)], ["ben"])
    assert await calendar.load() == [record("anna", "c-anna-2", hours=20)]
    assert await contacts.load() == [record("anna", "k-anna")]
    assert await other.load() == [record("anna", "f-anna")]
    unknown = records(store, "nobody", "calendar")
    assert await unknown.load() == []


async def test_fifty_thousand_people_are_written_in_chunks(store: Store) -> None:
    await tenant(store)
    calendar = records(store, "contoso", "calendar")
    many = [record(f"user-{n:05d}", f"sub-{n:05d}") for n in range(1_200)]
    await calendar.save(many, [])
    assert len(await calendar.load()) == 1_200
    await calendar.save([], [r.user_id for r in many[:700]])
    assert [r.user_id for r in await calendar.load()] == [r.user_id for r in many[700:]]


async def test_one_whose_client_state_cannot_be_decrypted_is_left_out(
    store: Store, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await tenant(store)
    calendar = records(store, "contoso", "calendar")
    await calendar.save([record("anna", "c-anna"), record("ben", "c-ben")], [])
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE mailbox_subscriptions SET client_state_encrypted"
                                      " = 'not-a-token' WHERE graph_subscription_id = 'c-ben'"))
    with caplog.at_level(logging.WARNING):
        assert await calendar.load() == [record("anna", "c-anna")]
    assert "c-ben" in caplog.text and "made again" in caplog.text


async def test_rotating_the_key_re_encrypts_the_client_states(store: Store) -> None:
    await tenant(store)
    calendar = records(store, "contoso", "calendar")
    await calendar.save([record("anna", "c-anna")], [])
    async with store.transaction() as tx:
        assert await tx.rotate_secrets() >= 1
    assert await calendar.load() == [record("anna", "c-anna")]


async def test_one_found_by_id_with_its_tenant_kind_and_client_state(store: Store) -> None:
    await tenant(store)
    await tenant(store, "fabrikam")
    await records(store, "contoso", "calendar").save([record("anna", "c-anna")], [])
    await records(store, "fabrikam", "contacts").save([record("ben", "k-ben")], [])
    # The tenant's one users subscription is kept as the record of "" (nobody).
    await records(store, "contoso", "users").save([MailboxRecord(
        "", "u-contoso", "users", NOW + timedelta(days=1), "users-secret")], [])
    async with store.transaction() as tx:
        found = await tx.mailbox_subscriptions.find("k-ben")
        assert found is not None
        assert (found.tenant, found.kind) == ("fabrikam", "contacts")
        assert found.record == MailboxSubscriptionRecord(
            "ben", "k-ben", "users/ben/events", NOW + timedelta(hours=24),
            f"{CLIENT_STATE}-k-ben")
        assert CLIENT_STATE not in repr(found)
        users = await tx.mailbox_subscriptions.find("u-contoso")
        assert users is not None and (users.tenant, users.kind) == ("contoso", "users")
        assert users.record.client_state == "users-secret"
        assert await tx.mailbox_subscriptions.find("nobody-knows") is None
    assert [r.graph_id for r in await records(store, "contoso", "users").load()] == ["u-contoso"]


async def test_found_by_id_is_one_indexed_query_among_many(
    store: Store, engine: AsyncEngine
) -> None:
    await tenant(store)
    await records(store).save([record(f"user-{n:04d}", f"sub-{n:04d}") for n in range(1_000)],
                              [])
    async with store.transaction() as tx:
        found = await tx.mailbox_subscriptions.find("sub-0777")
    assert found is not None and found.record.user_id == "user-0777"
    # The id is unique, so the database answers from its index, not a scan of every row.
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(text("SET enable_seqscan = off"))
            plan = (await connection.execute(text(
                "EXPLAIN SELECT * FROM mailbox_subscriptions "
                "WHERE graph_subscription_id = 'sub-0777'"))).scalars().all()
            assert any("Index" in line for line in plan), plan
        else:
            plan = (await connection.execute(text(
                "EXPLAIN QUERY PLAN SELECT * FROM mailbox_subscriptions "
                "WHERE graph_subscription_id = 'sub-0777'"))).all()
            assert any("INDEX" in str(row[-1]) for row in plan), plan


async def test_a_client_state_that_cannot_be_decrypted_is_not_found(
    store: Store, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    await tenant(store)
    await records(store).save([record("anna", "c-anna")], [])
    async with engine.begin() as connection:
        await connection.execute(text(
            "UPDATE mailbox_subscriptions SET client_state_encrypted = 'garbage'"))
    with caplog.at_level(logging.WARNING):
        async with store.transaction() as tx:
            assert await tx.mailbox_subscriptions.find("c-anna") is None
    assert "its notifications are ignored" in caplog.text
