"""API users: the uploaded directory per connection, saved and loaded, fields encrypted."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import (
    ApiUserRecord,
    NotFoundError,
    PbxConnectionSpec,
    SecretBox,
    Store,
    create_engine,
    generate_key,
    upgrade_database,
)
from m365pbx.store.migrate import alembic_config
from tests.store.helpers import NOW, raw_value

ALICE = ApiUserRecord("alice", {"cn": "Alice Archer", "email": "alice@contoso.com",
                                "pin": "s3cret"})
BOB = ApiUserRecord("bob", {"cn": "Bob Baker"})


async def connections(store: Store, *names: str) -> list[int]:
    async with store.transaction() as tx:
        return [(await tx.pbx_connections.create(PbxConnectionSpec(n, "api"))).id for n in names]


async def test_save_and_load_round_trip(store: Store) -> None:
    [office] = await connections(store, "office")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [BOB, ALICE, ApiUserRecord("carl")], now=NOW)
    async with store.transaction() as tx:
        loaded = await tx.api_users.load(office)
        assert await tx.api_users.count(office) == 3
    assert loaded == [ALICE, BOB, ApiUserRecord("carl", {})]  # by key
    assert "s3cret" not in repr(loaded[0])


async def test_fields_are_stored_encrypted(store: Store, engine: AsyncEngine) -> None:
    [office] = await connections(store, "office")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [ALICE], now=NOW)
    stored = await raw_value(engine, "api_users", "user_fields_encrypted")
    assert isinstance(stored, str)
    assert "s3cret" not in stored and "Archer" not in stored and "contoso" not in stored
    async with store.transaction() as tx:
        assert await tx.rotate_secrets() == 1  # key rotation covers them too
    async with store.transaction() as tx:
        assert await tx.api_users.load(office) == [ALICE]


async def test_saving_again_replaces_the_fields(store: Store) -> None:
    [office] = await connections(store, "office")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [ALICE, BOB], now=NOW)
    renamed = ApiUserRecord("alice", {"cn": "Alice Smith"})
    async with store.transaction() as tx:
        await tx.api_users.save(office, [renamed], now=NOW)
    async with store.transaction() as tx:
        assert await tx.api_users.load(office) == [renamed, BOB]


async def test_rows_belong_to_one_connection(store: Store) -> None:
    office, branch = await connections(store, "office", "branch")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [ALICE, BOB], now=NOW)
        await tx.api_users.save(branch, [ApiUserRecord("alice", {"cn": "Other Alice"})], now=NOW)
    async with store.transaction() as tx:
        assert await tx.api_users.delete(office, ["alice", "nobody"]) == 1
        assert await tx.api_users.load(office) == [BOB]
        assert await tx.api_users.load(branch) == [ApiUserRecord("alice", {"cn": "Other Alice"})]
        assert await tx.api_users.delete(office, []) == 0
        assert await tx.api_users.delete(office) == 1
        assert await tx.api_users.load(office) == []
        assert await tx.api_users.count(branch) == 1


async def test_a_large_directory_is_saved_and_deleted_in_chunks(store: Store) -> None:
    [office] = await connections(store, "office")
    users = [ApiUserRecord(f"u{i:05}", {"extension": str(1000 + i)}) for i in range(1300)]
    async with store.transaction() as tx:
        await tx.api_users.save(office, users, now=NOW)
    async with store.transaction() as tx:
        assert await tx.api_users.load(office) == users
        assert await tx.api_users.delete(office, [u.key for u in users[:1100]]) == 1100
        assert await tx.api_users.count(office) == 200


async def test_removing_the_connection_removes_its_users(store: Store) -> None:
    [office] = await connections(store, "office")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [ALICE], now=NOW)
    async with store.transaction() as tx:
        await tx.pbx_connections.delete(office)
    async with store.transaction() as tx:
        assert await tx.api_users.count(office) == 0


async def test_an_unknown_connection_is_refused(store: Store) -> None:
    with pytest.raises(NotFoundError, match="PBX connection 999"):
        async with store.transaction() as tx:
            await tx.api_users.save(999, [ALICE], now=NOW)


async def test_rows_the_key_cannot_read_are_left_out_and_still_counted(
    store: Store, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    [office] = await connections(store, "office")
    async with store.transaction() as tx:
        await tx.api_users.save(office, [ALICE, BOB], now=NOW)
    other = Store(engine, SecretBox([generate_key()], source="another key"))
    async with other.transaction() as tx:
        assert await tx.api_users.load(office) == []
        assert await tx.api_users.count(office) == 2
    assert "until the client uploads again" in caplog.text
    assert "s3cret" not in caplog.text


async def test_migration_0004_downgrades_and_upgrades(empty_database_url: str) -> None:
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url, transactional_ddl=True)
    try:
        async with engine.begin() as connection:

            def downgrade(sync_connection: object) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                command.downgrade(config, "0003")

            await connection.run_sync(downgrade)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "api_users" not in tables and "sip_publications" in tables
    finally:
        await engine.dispose()
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "api_users" in tables
    finally:
        await engine.dispose()
