"""One write path: writers never lock each other out; failed writes are retried, then reported.

Seen (issue 18 §5): at start-up with 2,000 people on SQLite, a subscription's record was
lost to `database is locked`: one writer's transaction stayed open while the event loop
was busy elsewhere, and the other writers gave up after SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.clock import SystemClock
from m365pbx.service.persistence import StoreSubscriptionRecords
from m365pbx.store import (
    Repositories,
    SecretBox,
    ServiceAccountSpec,
    SignInMethod,
    Store,
    StoreWriteError,
    TenantSpec,
    WriteRetry,
    create_engine,
    db,
)
from m365pbx.sync.teams_to_pbx.records import SubscriptionRecord
from tests.store.helpers import NOW

FAST = WriteRetry(attempts=4, initial=0.05, maximum=0.1)


async def setup(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.tenants.create(TenantSpec("contoso", "contoso-id"))
        for n in range(4):
            await tx.service_accounts.create(
                ServiceAccountSpec(f"svc{n}@contoso.com", "contoso", SignInMethod.DEVICE_CODE))


def record(n: int) -> SubscriptionRecord:
    return SubscriptionRecord(f"sub-{n}", f"svc{n}@contoso.com", "/communications/presences",
                              NOW + timedelta(hours=1), "client-state")


async def audit(tx: Repositories, action: str) -> None:
    await tx.audit.append(at=NOW, actor="test", action=action, object_type="test",
                          object_id=None, details={})


async def test_a_slow_writer_does_not_lock_the_others_out(
    database_url: str, engine: AsyncEngine, box: SecretBox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SQLite's own wait is short here, so only the store's one-writer rule can save the day.
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 100)
    store = Store(create_engine(database_url), box)
    try:
        await setup(store)
        records = StoreSubscriptionRecords(store, "contoso", SystemClock())
        holding = asyncio.Event()

        async def slow_writer() -> None:
            async with store.transaction() as tx:
                await audit(tx, "slow")
                await tx.session.flush()
                holding.set()
                await asyncio.sleep(0.5)  # the event loop is busy elsewhere meanwhile

        slow = asyncio.create_task(slow_writer())
        await holding.wait()
        await asyncio.gather(*(records.save(record(n)) for n in range(4)))
        await slow
        for n in range(4):
            loaded = await records.load(f"svc{n}@contoso.com")
            assert [r.graph_id for r in loaded] == [f"sub-{n}"]
    finally:
        await store.close()


@pytest.fixture
def sqlite_url(database_url: str) -> str:
    """The SQLite database (the tests below hold its lock from a second connection)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("holds SQLite's file lock from outside the store")
    return database_url


def lock_from_outside(url: str, seconds: float) -> sqlite3.Connection:
    """Another process's writer: a plain connection holding the write lock."""
    path = url.split(":///", 1)[1]
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    asyncio.get_running_loop().call_later(seconds, connection.rollback)
    return connection


async def test_a_locked_write_is_retried_until_it_succeeds(
    sqlite_url: str, engine: AsyncEngine, box: SecretBox, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    store = Store(create_engine(sqlite_url), box, retry=FAST)
    # The other writer lets go when the store says it will try again (not after a fixed
    # time: on a loaded machine the first try could start after that time had passed).
    outside = lock_from_outside(sqlite_url, 30.0)

    class LetGoOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "trying again" in record.getMessage():
                outside.rollback()

    handler = LetGoOnRetry()
    logging.getLogger("m365pbx.store.store").addHandler(handler)
    try:
        await store.write(lambda tx: audit(tx, "retried"), what="an audit event")
        outside.close()
        async with store.transaction() as tx:
            assert [e.action for e in await tx.audit.list_recent()] == ["retried"]
        assert store.health()["retried_writes"] >= 1
        assert store.health()["state"] == "ok"
        assert any("trying again" in r.getMessage() for r in caplog.records)
    finally:
        logging.getLogger("m365pbx.store.store").removeHandler(handler)
        outside.close()
        await store.close()


async def test_a_write_that_keeps_failing_is_reported_not_dropped(
    sqlite_url: str, engine: AsyncEngine, box: SecretBox, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 20)
    store = Store(create_engine(sqlite_url), box, retry=FAST)
    try:
        outside = lock_from_outside(sqlite_url, 5.0)
        with pytest.raises(StoreWriteError) as failed:
            await store.write(lambda tx: audit(tx, "lost"), what="an audit event")
        outside.rollback()
        outside.close()
        assert "an audit event" in str(failed.value) and "locked" in str(failed.value)
        health: dict[str, Any] = store.health()
        assert health["state"] == "failing" and health["failed_writes"] == 1
        assert "an audit event" in health["last_error"] and health["since"]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and "an audit event" in errors[-1].getMessage()
        # The next write that succeeds clears the state.
        await store.write(lambda tx: audit(tx, "later"), what="an audit event")
        assert store.health()["state"] == "ok" and store.health()["last_error"] is None
    finally:
        await store.close()


async def test_a_refused_write_is_not_retried(store: Store) -> None:
    await setup(store)
    calls = 0

    async def duplicate(tx: Repositories) -> None:
        nonlocal calls
        calls += 1
        await tx.tenants.create(TenantSpec("contoso", "contoso-id"))

    with pytest.raises(Exception, match="contoso"):
        await store.write(duplicate, what="a tenant")
    assert calls == 1  # a conflict is an answer, not a passing lock


async def test_a_failing_database_is_reported_at_once(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def broken(tx: Repositories) -> None:
        nonlocal calls
        calls += 1
        await tx.session.execute(text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(StoreWriteError, match="a test row"):
        await store.write(broken, what="a test row")
    assert calls == 1  # no lock to wait for: trying again would fail the same way
    assert store.health()["state"] == "failing"
    assert any(r.levelno >= logging.ERROR and "a test row" in r.getMessage()
               for r in caplog.records)
