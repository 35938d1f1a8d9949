"""The wiring that keeps SIP publications in the store: when it saves, what it restores.

A StoredSipConnection (as build_connection makes it) against a scripted server that keeps
ETags like Kamailio (tests/pbx/sip/fakeserver.EtagServer), with a store on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from m365pbx.clock import SystemClock
from m365pbx.config import SipConnection as SipConfig
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.pbx.sip import Addressing, Backoff, SipOptions, Timers
from m365pbx.service.connections import build_connection
from m365pbx.service.publication_store import StoredSipConnection
from m365pbx.store import (
    PbxConnectionSpec,
    Repositories,
    SecretBox,
    SipPublicationRecord,
    Store,
    generate_key,
    upgrade_database,
)
from tests.pbx.sip.fakeserver import EtagServer, FakeServer, start_fake_server
from tests.pbx.sip.helpers import wait_until

NAME = "office-sip"
ANNA = PbxUser("anna", {"extension": "201", "sip_password": "s3cret"})
BEN = PbxUser("ben", {"extension": "202"})
CARL = PbxUser("carl", {"extension": "203"})
# Keep-alives far apart: each one also refreshes a publication (the canary that notices a
# restarted server), which would change the ETags these tests expect.
FAST: dict[str, Any] = dict(
    keepalive_interval=30.0,
    keepalive_timeout=0.3,
    timers=Timers(t1=0.02, t2=0.08, t4=0.1),
    backoff=Backoff(initial=0.05, maximum=0.2),
    stop_timeout=0.5,
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store that knows the connection."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    async with store.transaction() as tx:
        await tx.pbx_connections.create(PbxConnectionSpec(NAME, "sip"))
    yield store
    await store.close()


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    """A scripted presence server."""
    server = await start_fake_server(EtagServer())
    yield server
    server.close()


def connection_for(
    store: Store, server: FakeServer, *, orphan_grace: float = 60.0, name: str = NAME
) -> StoredSipConnection:
    """A connection as the service builds it, with short delays for tests."""
    options = replace(SipOptions(server=server.address, addressing=Addressing("example.com")),
                      **FAST)
    connection = StoredSipConnection(name, options, store, SystemClock())
    connection.keeper.save_delay = 0.05
    connection.keeper.save_every = 0.5
    connection.keeper.orphan_grace = orphan_grace
    connection.keeper.backoff = Backoff(initial=0.05, maximum=0.1)
    return connection


async def started(connection: StoredSipConnection) -> StoredSipConnection:
    """Start and wait until connected."""
    await connection.start()
    await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
    return connection


async def saved(store: Store, *, now: datetime | None = None) -> dict[str, SipPublicationRecord]:
    """The unexpired publications in the store, by key."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        records = await tx.sip_publications.load(row.id, now=now or datetime.now(UTC))
    return {record.key: record for record in records}


async def put(store: Store, *records: SipPublicationRecord) -> None:
    """Save publications as an earlier run would have."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        await tx.sip_publications.save(row.id, list(records), now=datetime.now(UTC))


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll an async `check` until it holds; TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


async def etags_saved(store: Store, expected: dict[str, str]) -> bool:
    """True when the store holds exactly these ETags."""
    return {key: r.etag for key, r in (await saved(store)).items()} == expected


def publishes(server: FakeServer) -> list[tuple[str | None, str | None, bool]]:
    """(SIP-If-Match, Expires, has a body) of every PUBLISH the server received."""
    return [(r.headers.get("sip-if-match"), r.headers.get("expires"), bool(r.body))
            for r in server.of("PUBLISH")]


async def test_build_connection_with_a_store_keeps_publications() -> None:
    config = SipConfig.model_validate({"name": NAME, "kind": "sip", "tenant": "contoso",
                                       "settings": {"server": "127.0.0.1:5060",
                                                    "domain": "example.com"}})
    store = Store.open("sqlite+aiosqlite:///:memory:", SecretBox([generate_key()]))
    try:
        assert isinstance(build_connection(config, SystemClock(), store), StoredSipConnection)
        plain = build_connection(config, SystemClock())
        assert plain is not None and not isinstance(plain, StoredSipConnection)
    finally:
        await store.close()


async def test_changes_are_saved_in_bursts_and_removals_forgotten(
    store: Store, server: FakeServer
) -> None:
    connection = await started(connection_for(store, server))
    try:
        for user in (ANNA, BEN, CARL):
            await connection.set_presence(user, PbxPresence.DND, "")
        await eventually(lambda: etags_saved(store, {"anna": "e1", "ben": "e2", "carl": "e3"}))
        assert connection.keeper.writes == 1  # one burst, one transaction
        record = (await saved(store))["anna"]
        assert record.user_fields == ANNA.fields
        assert record.expires_at == connection.publications()["anna"].expires_at
        await connection.set_presence(ANNA, PbxPresence.AWAY, "")  # a modify: new ETag
        await connection.set_presence(BEN, PbxPresence.ONLINE, "")  # removed
        await eventually(lambda: etags_saved(store, {"anna": "e4", "carl": "e3"}))
        writes = connection.keeper.writes
        await asyncio.sleep(0.7)  # the periodic look finds nothing new: no writes
        assert connection.keeper.writes == writes
    finally:
        await connection.stop()
    assert await saved(store) == {}  # the clean stop withdrew everything


async def test_saved_publications_are_taken_over_before_anything_is_sent(
    store: Store, server: FakeServer
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    responder = server.responder
    assert isinstance(responder, EtagServer)
    responder.live.update({"old-anna": b"dnd", "old-ben": b"busy"})
    await put(store,
              SipPublicationRecord("anna", "old-anna", soon, dict(ANNA.fields)),
              SipPublicationRecord("ben", "old-ben", soon, dict(BEN.fields)),
              SipPublicationRecord("lapsed", "old-x", datetime.now(UTC), {"extension": "9"}),
              SipPublicationRecord("nobody", "old-y", soon, {}))  # no address: not taken
    connection = connection_for(store, server)
    await connection.start()
    try:
        assert connection.publication_etags() == {"anna": "old-anna", "ben": "old-ben"}
        assert connection.keeper.restored == 2
        assert await saved(store, now=datetime.now(UTC) - timedelta(hours=1)) != {}
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await connection.set_presence(ANNA, PbxPresence.AWAY, "")
        assert publishes(server) == [("old-anna", "600", True)]
        assert set(responder.live) == {"old-ben", "e1"}  # modified, not added
        # The lapsed row was purged; the unaddressable one is forgotten at the next save.
        await eventually(lambda: etags_saved(store, {"anna": "e1", "ben": "old-ben"}))
        expired = await saved(store, now=datetime.now(UTC) - timedelta(hours=1))
        assert set(expired) == {"anna", "ben"}
    finally:
        await connection.stop()


async def test_unclaimed_publications_are_withdrawn_after_the_grace(
    store: Store, server: FakeServer
) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=5)
    responder = server.responder
    assert isinstance(responder, EtagServer)
    responder.live.update({"old-anna": b"dnd", "old-ben": b"busy"})
    await put(store,
              SipPublicationRecord("anna", "old-anna", soon, dict(ANNA.fields)),
              SipPublicationRecord("ben", "old-ben", soon, dict(BEN.fields)))
    connection = await started(connection_for(store, server, orphan_grace=0.3))
    try:
        await connection.set_presence(ANNA, PbxPresence.BUSY, "")  # claimed
        # Ben is online now (the hub writes nothing for him): his old dnd must go.
        await server.wait_for(lambda: ("old-ben", "0", False) in publishes(server))
        assert set(responder.live) == {"e1"}
        await eventually(lambda: etags_saved(store, {"anna": "e1"}))
    finally:
        await connection.stop()


async def test_a_stop_the_server_does_not_answer_keeps_them_for_the_next_start(
    store: Store, server: FakeServer
) -> None:
    connection = await started(connection_for(store, server))
    await connection.set_presence(ANNA, PbxPresence.DND, "")
    server.responder = lambda request: None  # the server stops answering
    await connection.stop()
    assert {k: r.etag for k, r in (await saved(store)).items()} == {"anna": "e1"}


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
    store: Store, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    connection = await started(connection_for(store, server))
    flaky = FlakyStore(store, failures=2)
    connection.keeper.store = flaky
    try:
        with caplog.at_level(logging.WARNING):
            await connection.set_presence(ANNA, PbxPresence.DND, "")
            await eventually(lambda: etags_saved(store, {"anna": "e1"}))
        # The store reports the failed write (log, /healthz); the keeper tries again.
        assert "could not save the SIP publications (trying again)" in caplog.text
        assert "OSError: disk full" in caplog.text
        assert flaky.failures == 0
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await connection.stop()


async def test_a_connection_the_store_does_not_know_works_without_keeping(
    store: Store, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    connection = connection_for(store, server, name="undeclared")
    with caplog.at_level(logging.WARNING):
        await started(connection)
    try:
        assert "undeclared is not in the store" in caplog.text
        await connection.set_presence(ANNA, PbxPresence.DND, "")
        assert connection.publication_etags() == {"anna": "e1"}
        await connection.keeper.save()  # nothing to do, no error
    finally:
        await connection.stop()
    assert caplog.text.count("is not in the store") == 1


async def test_an_unreadable_store_at_start_is_survived(
    server: FakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'not-migrated.db'}",
                       SecretBox([generate_key()]))
    connection = connection_for(store, server)
    try:
        with caplog.at_level(logging.WARNING):
            await started(connection)
        assert "could not load the saved SIP publications" in caplog.text
        await connection.set_presence(ANNA, PbxPresence.DND, "")
        assert connection.publication_etags() == {"anna": "e1"}
    finally:
        await connection.stop()
        await store.close()
