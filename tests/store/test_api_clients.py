"""API clients in the store: only salted hashes at rest, checking, usage, revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.pbx.api import ApiConnection, MemoryPresenceView, PersonPresence, api_router
from m365pbx.pbx.api.keys import (
    KEY_PREFIX,
    InsufficientScope,
    InvalidApiKey,
    Scope,
    generate_api_key,
    hash_key,
    key_id_of,
)
from m365pbx.service.api_keys import (
    StoreApiKeyChecker,
    create_api_client,
    revoke_api_client,
)
from m365pbx.store import ConflictError, NotFoundError, Store, create_engine, upgrade_database
from m365pbx.store.migrate import alembic_config

from .helpers import NOW


class StepClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.current = NOW

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


async def _create(store: Store, name: str, scopes: list[str]) -> str:
    async with store.transaction() as tx:
        return await create_api_client(tx, name, scopes, now=NOW, actor="test")


async def test_create_get_and_list(store: Store) -> None:
    new = generate_api_key()
    async with store.transaction() as tx:
        row = await tx.api_clients.create(
            "board", key_id=new.key_id, salt=new.salt, key_hash=new.key_hash,
            scopes=["read", "read"], now=NOW,
        )
        assert row.id is not None
    async with store.transaction() as tx:
        found = await tx.api_clients.get("board")
        assert found is not None
        assert (found.key_id, found.scopes, found.created_at) == (new.key_id, ["read"], NOW)
        assert found.last_used_at is None and found.revoked_at is None
        assert await tx.api_clients.by_key_id(new.key_id) == found
        assert await tx.api_clients.by_key_id("nothere") is None
        assert [r.name for r in await tx.api_clients.list_all()] == ["board"]
        assert new.salt not in repr(found) and new.key_hash not in repr(found)


async def test_names_and_key_ids_are_unique(store: Store) -> None:
    await _create(store, "board", ["read"])
    with pytest.raises(ConflictError, match="'board' exists already"):
        await _create(store, "board", ["read"])
    async with store.transaction() as tx:
        taken = (await tx.api_clients.get("board"))
        assert taken is not None
        key_id = taken.key_id
    new = generate_api_key()
    with pytest.raises(ConflictError, match="cannot add API client 'other'"):
        async with store.transaction() as tx:
            await tx.api_clients.create("other", key_id=key_id, salt=new.salt,
                                        key_hash=new.key_hash, scopes=["read"], now=NOW)
    async with store.transaction() as tx:
        assert [r.name for r in await tx.api_clients.list_all()] == ["board"]


async def test_keys_are_hashed_at_rest(store: Store, engine: AsyncEngine) -> None:
    key = await _create(store, "console", ["read", "write"])
    secret_part = key[len(KEY_PREFIX):]
    async with engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT name, key_id, salt, key_hash, scopes FROM api_clients"))).one()
        audit = (await connection.execute(text("SELECT details FROM audit_events"))).all()
    stored = " ".join(str(value) for value in row)
    assert key not in stored and secret_part not in stored
    assert secret_part[12:] not in stored  # only the public key id part is kept
    assert row.key_id == key_id_of(key)
    assert row.key_hash == hash_key(key, row.salt)
    assert len(row.salt) == 32 and len(row.key_hash) == 64
    assert len(audit) == 1 and secret_part not in str(audit[0])


async def test_the_checker_accepts_the_key_and_records_its_use(store: Store) -> None:
    key = await _create(store, "board", ["read"])
    clock = StepClock()
    checker = StoreApiKeyChecker(store, clock=clock, touch_interval=timedelta(minutes=1))
    identity = await checker.check(key, Scope.READ)
    assert (identity.name, identity.scopes) == ("board", frozenset({Scope.READ}))

    async def last_used() -> object:
        async with store.transaction() as tx:
            row = await tx.api_clients.get("board")
            assert row is not None
            return row.last_used_at

    assert await last_used() == NOW
    await clock.sleep(30)
    await checker.check(key, Scope.READ)
    assert await last_used() == NOW  # not rewritten on every request
    await clock.sleep(31)
    await checker.check(key, Scope.READ)
    assert await last_used() == NOW + timedelta(seconds=61)


async def test_the_checker_refuses_wrong_revoked_and_under_scoped_keys(store: Store) -> None:
    key = await _create(store, "board", ["read"])
    checker = StoreApiKeyChecker(store, clock=StepClock())
    forged = key[:-3] + ("xyz" if not key.endswith("xyz") else "abc")  # right key id
    for wrong in (forged, "m365pbx_short", "", generate_api_key().key):
        with pytest.raises(InvalidApiKey, match="not valid"):
            await checker.check(wrong, Scope.READ)
    with pytest.raises(InsufficientScope):
        await checker.check(key, Scope.WRITE)
    async with store.transaction() as tx:
        row = await tx.api_clients.get("board")
        assert row is not None and row.last_used_at is None  # refused requests leave no trace
        assert await revoke_api_client(tx, "board", now=NOW, actor="test")
    with pytest.raises(InvalidApiKey, match="revoked"):
        await checker.check(key, Scope.READ)


async def test_revoke(store: Store) -> None:
    await _create(store, "board", ["read"])
    async with store.transaction() as tx:
        assert await revoke_api_client(tx, "board", now=NOW, actor="test")
        assert not await revoke_api_client(tx, "board", now=NOW + timedelta(1), actor="test")
        row = await tx.api_clients.get("board")
        assert row is not None and row.revoked_at == NOW
        with pytest.raises(NotFoundError, match="no API client named 'nobody'"):
            await revoke_api_client(tx, "nobody", now=NOW, actor="test")
        actions = [event.action for event in await tx.audit.list_recent()]
        assert actions == ["api_client.revoke", "api_client.create"]


async def test_a_key_needs_a_known_scope(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        await _create(store, "board", [])
    with pytest.raises(ValueError, match="unknown scope"):
        await _create(store, "board", ["admin"])
    async with store.transaction() as tx:
        assert await tx.api_clients.list_all() == []


async def test_the_api_with_stored_keys(store: Store) -> None:
    reader = await _create(store, "board", ["read"])
    writer = await _create(store, "pbx", ["write"])
    view = MemoryPresenceView([PersonPresence("alice", "office")])
    app = FastAPI()
    app.include_router(api_router(view, {"office": ApiConnection("office")},
                                  StoreApiKeyChecker(store)))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m365pbx") as client:

        async def status(key: str) -> int:
            response = await client.get("/api/v1/people",
                                        headers={"Authorization": f"Bearer {key}"})
            return response.status_code

        assert await status(reader) == 200
        assert await status(writer) == 403
        async with store.transaction() as tx:
            await revoke_api_client(tx, "board", now=NOW, actor="test")
        assert await status(reader) == 401


async def test_migration_0002_downgrades_and_upgrades(empty_database_url: str) -> None:
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url, transactional_ddl=True)
    try:
        async with engine.begin() as connection:
            def downgrade(sync_connection: object) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                command.downgrade(config, "0001")

            await connection.run_sync(downgrade)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "api_clients" not in tables and "tenants" in tables
    finally:
        await engine.dispose()
    await upgrade_database(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "api_clients" in tables
    finally:
        await engine.dispose()
