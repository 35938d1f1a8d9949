"""SIP publications: saved per connection and PBX user, loaded while unexpired, fields encrypted."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import (
    NotFoundError,
    PbxConnectionSpec,
    SecretBox,
    SipPublicationRecord,
    Store,
    create_engine,
    generate_key,
    upgrade_database,
)
from m365pbx.store.migrate import alembic_config
from tests.store.helpers import NOW, raw_value

LATER = NOW + timedelta(minutes=10)
ANNA = {"extension": "201", "cn": "Anna", "sip_password": "s3cret"}


def record(
    key: str, etag: str, expires_at: datetime = LATER, fields: dict[str, str] | None = None
) -> SipPublicationRecord:
    return SipPublicationRecord(key, etag, expires_at, fields or {"extension": key})


async def connections(store: Store, *names: str) -> list[int]:
    async with store.transaction() as tx:
        return [(await tx.pbx_connections.create(PbxConnectionSpec(n, "sip"))).id for n in names]


async def test_save_and_load_round_trip(store: Store) -> None:
    [sip] = await connections(store, "office-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(
            sip, [record("anna", "a.1", fields=ANNA), record("ben", "b.1")], now=NOW
        )
    async with store.transaction() as tx:
        loaded = await tx.sip_publications.load(sip, now=NOW)
    assert loaded == [record("anna", "a.1", fields=ANNA), record("ben", "b.1")]
    assert loaded[0].expires_at == LATER and loaded[0].expires_at.tzinfo is not None
    assert "s3cret" not in repr(loaded[0])


async def test_user_fields_are_stored_encrypted(store: Store, engine: AsyncEngine) -> None:
    [sip] = await connections(store, "office-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record("anna", "a.1", fields=ANNA)], now=NOW)
    stored = await raw_value(engine, "sip_publications", "user_fields_encrypted")
    assert isinstance(stored, str) and "s3cret" not in stored and "201" not in stored
    async with store.transaction() as tx:
        assert await tx.rotate_secrets() == 1  # key rotation covers them too


async def test_saving_again_replaces_the_etag_and_expiry(store: Store) -> None:
    [sip] = await connections(store, "office-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record("anna", "a.1")], now=NOW)
    refreshed = record("anna", "a.2", LATER + timedelta(minutes=8), {"extension": "202"})
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [refreshed], now=NOW + timedelta(minutes=8))
    async with store.transaction() as tx:
        assert await tx.sip_publications.load(sip, now=NOW) == [refreshed]


async def test_expired_publications_are_not_loaded_and_can_be_purged(store: Store) -> None:
    [sip] = await connections(store, "office-sip")
    lapsed = record("old", "o.1", NOW - timedelta(seconds=1))
    at_the_edge = record("edge", "e.1", NOW)
    live = record("live", "l.1")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [lapsed, at_the_edge, live], now=NOW)
    async with store.transaction() as tx:
        assert await tx.sip_publications.load(sip, now=NOW) == [live]
        assert await tx.sip_publications.delete_expired(sip, now=NOW) == 2
        assert await tx.sip_publications.load(sip, now=NOW - timedelta(hours=1)) == [live]
        # Once its expiry has passed, a publication is not handed out again.
        assert await tx.sip_publications.load(sip, now=LATER) == []


async def test_rows_belong_to_one_connection(store: Store) -> None:
    sip, other = await connections(store, "office-sip", "branch-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record("anna", "a.1"), record("ben", "b.1")], now=NOW)
        await tx.sip_publications.save(other, [record("anna", "x.1")], now=NOW)
    async with store.transaction() as tx:
        assert await tx.sip_publications.delete(sip, ["anna", "nobody"]) == 1
        assert [r.key for r in await tx.sip_publications.load(sip, now=NOW)] == ["ben"]
        assert [r.etag for r in await tx.sip_publications.load(other, now=NOW)] == ["x.1"]
        assert await tx.sip_publications.delete(sip) == 1
        assert await tx.sip_publications.load(sip, now=NOW) == []
        assert len(await tx.sip_publications.load(other, now=NOW)) == 1


async def test_many_keys_are_deleted_in_chunks(store: Store) -> None:
    [sip] = await connections(store, "office-sip")
    keys = [f"u{i:04}" for i in range(1200)]
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record(k, f"e{k}") for k in keys], now=NOW)
    async with store.transaction() as tx:
        assert await tx.sip_publications.delete(sip, keys[:1100]) == 1100
        assert len(await tx.sip_publications.load(sip, now=NOW)) == 100


async def test_removing_the_connection_removes_its_publications(store: Store) -> None:
    [sip] = await connections(store, "office-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record("anna", "a.1")], now=NOW)
    async with store.transaction() as tx:
        await tx.pbx_connections.delete(sip)
    async with store.transaction() as tx:
        assert await tx.sip_publications.load(sip, now=NOW) == []


async def test_an_unknown_connection_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="PBX connection 999"):
        async with store.transaction() as tx:
            await tx.sip_publications.save(999, [record("anna", "a.1")], now=NOW)


async def test_a_row_the_key_cannot_read_is_skipped(
    store: Store, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    [sip] = await connections(store, "office-sip")
    async with store.transaction() as tx:
        await tx.sip_publications.save(sip, [record("anna", "a.1")], now=NOW)
    other = Store(engine, SecretBox([generate_key()], source="another key"))
    async with other.transaction() as tx:
        assert await tx.sip_publications.load(sip, now=NOW) == []
    assert "left to expire" in caplog.text


async def test_migration_0003_downgrades_and_upgrades(empty_database_url: str) -> None:
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url, transactional_ddl=True)
    try:
        async with engine.begin() as connection:

            def downgrade(sync_connection: object) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                command.downgrade(config, "0002")

            await connection.run_sync(downgrade)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "sip_publications" not in tables and "api_clients" in tables
    finally:
        await engine.dispose()
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "sip_publications" in tables
    finally:
        await engine.dispose()
