"""The wiring that keeps API connections' uploaded users in the store: saving and restoring.

A StoredApiConnection (as build_connection makes it) with a store on SQLite; a "restart" is
a second connection of the same name on the same database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from m365pbx.clock import SystemClock
from m365pbx.config import ApiConnection as ApiConfig
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.pbx.sip import Backoff
from m365pbx.service.api_directory import StoredApiConnection
from m365pbx.service.connections import build_connection
from m365pbx.store import (
    ApiUserRecord,
    PbxConnectionSpec,
    Repositories,
    SecretBox,
    Store,
    generate_key,
    upgrade_database,
)

NAME = "office"
ALICE = PbxUser("alice", {"cn": "Alice Archer", "email": "alice@contoso.com"})
BOB = PbxUser("bob", {"cn": "Bob Baker", "extension": "202"})
CARL = PbxUser("carl", {"cn": "Carl Clark"})


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store that knows the connection."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    async with store.transaction() as tx:
        await tx.pbx_connections.create(PbxConnectionSpec(NAME, "api"))
    yield store
    await store.close()


def connection_for(store: Store, name: str = NAME) -> StoredApiConnection:
    """A connection as the service builds it, retrying quickly."""
    connection = StoredApiConnection(name, store, SystemClock())
    connection.keeper.backoff = Backoff(initial=0.05, maximum=0.1)
    return connection


async def saved(store: Store) -> dict[str, dict[str, str]]:
    """The users in the store, by key."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        records = await tx.api_users.load(row.id)
    return {record.key: dict(record.fields) for record in records}


async def put(store: Store, *users: PbxUser) -> None:
    """Save users as an earlier run would have."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        await tx.api_users.save(row.id, [ApiUserRecord(u.key, u.fields) for u in users],
                                now=SystemClock().now())


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll an async `check` until it holds; TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def holds(store: Store, *users: PbxUser) -> Callable[[], Awaitable[bool]]:
    """A check: the store holds exactly these users."""
    async def check() -> bool:
        return await saved(store) == {u.key: dict(u.fields) for u in users}

    return check


async def test_build_connection_with_a_store_keeps_uploaded_users() -> None:
    config = ApiConfig.model_validate({"name": NAME, "kind": "api", "tenant": "contoso"})
    store = Store.open("sqlite+aiosqlite:///:memory:", SecretBox([generate_key()]))
    try:
        assert isinstance(build_connection(config, SystemClock(), store), StoredApiConnection)
        plain = build_connection(config, SystemClock())
        assert isinstance(plain, ApiConnection) and not isinstance(plain, StoredApiConnection)
    finally:
        await store.close()


async def test_an_upload_is_saved_and_a_restart_lists_it_at_once(store: Store) -> None:
    first = connection_for(store)
    await first.start()
    try:
        first.replace_users([ALICE, BOB])
        await eventually(holds(store, ALICE, BOB))
        assert first.keeper.writes == 1
    finally:
        await first.stop()

    second = connection_for(store)
    uploads: list[list[PbxUser]] = []
    second.on_users(uploads.append)
    await second.start()
    try:
        assert second.status().state is ConnectionState.CONNECTED
        assert await second.list_users() == [ALICE, BOB]
        assert second.keeper.restored == 2
        assert uploads == []  # restoring is not an upload
        await asyncio.sleep(0.1)
        assert second.keeper.writes == 0  # nothing to write back
    finally:
        await second.stop()


async def test_an_upload_after_the_restart_replaces_the_saved_set(store: Store) -> None:
    await put(store, ALICE, BOB)
    connection = connection_for(store)
    await connection.start()
    try:
        renamed = PbxUser("alice", {"cn": "Alice Smith"})
        connection.replace_users([renamed, CARL])
        await eventually(holds(store, renamed, CARL))
        assert await connection.list_users() == [renamed, CARL]
        assert connection.keeper.writes == 1  # one upload, one transaction
        connection.replace_users([renamed, CARL])  # the same again: nothing to write
        await asyncio.sleep(0.1)
        assert connection.keeper.writes == 1 and not connection.keeper.pending
        connection.replace_users([])  # ?allow_empty=true
        await eventually(holds(store))
    finally:
        await connection.stop()
    again = connection_for(store)
    await again.start()
    try:
        assert await again.list_users() == []
    finally:
        await again.stop()


async def test_an_upload_not_yet_saved_is_saved_by_the_stop(store: Store) -> None:
    connection = connection_for(store)
    await connection.start()
    connection.replace_users([ALICE])
    await connection.stop()  # before the saver had a turn
    assert await saved(store) == {"alice": dict(ALICE.fields)}
    assert not connection.keeper.pending


async def test_rows_an_old_key_wrote_are_replaced_by_the_next_upload(
    store: Store, tmp_path: Path
) -> None:
    await put(store, ALICE, BOB)
    # The secret key was lost: a store with a new key cannot read the saved fields.
    rekeyed = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}",
                         SecretBox([generate_key()]))
    connection = connection_for(rekeyed)
    try:
        await connection.start()
        assert await connection.list_users() == []
        connection.replace_users([CARL])
        await eventually(holds(rekeyed, CARL))  # the unreadable rows are gone too
    finally:
        await connection.stop()
        await rekeyed.close()


class FlakyStore(Store):
    """A store whose first transactions fail (a full disk, a database restarting)."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store.engine, store.box)
        self.failures = failures

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        """Fail while failures are left, then hand out real transactions."""
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        async with super().transaction() as tx:
            yield tx


async def test_a_failing_store_is_retried_and_the_connection_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connection_for(store)
    await connection.start()
    flaky = FlakyStore(store, failures=2)
    connection.keeper.store = flaky
    try:
        with caplog.at_level(logging.WARNING):
            connection.replace_users([ALICE])
            await eventually(holds(store, ALICE))
        # The store reports the failed write (log, /healthz); the keeper tries again.
        assert "could not save the uploaded users (trying again)" in caplog.text
        assert "OSError: disk full" in caplog.text
        assert flaky.failures == 0
        assert await connection.list_users() == [ALICE]
    finally:
        await connection.stop()


async def test_a_connection_the_store_does_not_know_works_without_keeping(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connection_for(store, name="undeclared")
    with caplog.at_level(logging.WARNING):
        await connection.start()
    try:
        assert "undeclared is not in the store" in caplog.text
        connection.replace_users([ALICE])
        await connection.keeper.save()  # nothing to do, no error
        assert await connection.list_users() == [ALICE]
    finally:
        await connection.stop()
    assert caplog.text.count("is not in the store") == 1


async def test_an_unreadable_store_at_start_is_survived(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'not-migrated.db'}",
                       SecretBox([generate_key()]))
    connection = connection_for(store)
    try:
        with caplog.at_level(logging.WARNING):
            await connection.start()
        assert "could not load the saved users" in caplog.text
        assert connection.status().state is ConnectionState.CONNECTED
        connection.replace_users([ALICE])
        assert await connection.list_users() == [ALICE]
    finally:
        await connection.stop()
        await store.close()


async def test_a_new_holder_takes_the_saved_users_unless_its_own_upload_is_newer(
        store: Store) -> None:
    # Several nodes: the node taking a tenant over reads the directory the PBX uploaded to
    # another node; an upload to this node that is not saved yet is newer and stays
    # (found in tests/e2e/test_cluster.py: a takeover right after an upload lost it).
    connection = connection_for(store)
    connection.replace_users([ALICE])  # not started: the saver has not written it
    await put(store, BOB)
    assert await connection.keeper.restore(newer=True) == 0
    assert [u.key for u in await connection.list_users()] == [ALICE.key]
    await connection.keeper.save()
    await put(store, BOB)  # another node's upload, saved after this one's
    assert await connection.keeper.restore(newer=True) == 2
    assert {u.key for u in await connection.list_users()} == {ALICE.key, BOB.key}

