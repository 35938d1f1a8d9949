"""SIP publications on several nodes (issue 25): two LeasedSipConnections on one PostgreSQL
store and one real Kamailio, the tenant's lease taken by hand. The new holder modifies the
old holder's publication (one publication, no withdrawal); the old holder, stale (a paused
process whose lease deadline passed), neither publishes nor writes its ETags; a standby
connection sends nothing at all."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from m365pbx.clock import SystemClock
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.pbx.sip.pidf import NS_PIDF
from m365pbx.service.leases import Ownership, StoreLeases
from m365pbx.service.pbx_leases import LeasedSipConnection
from m365pbx.store import (
    FencedOut,
    PbxConnectionSpec,
    SecretBox,
    Store,
    generate_key,
    upgrade_database,
)
from tests.pbx.sip.conftest import kamailio, sip_tools
from tests.pbx.sip.helpers import RawWatcher, options
from tests.pbx.sip.kamailio import KamailioServer
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

__all__ = ["kamailio", "sip_tools"]  # fixtures used below

pytestmark = pytest.mark.postgres

NAME = "office-sip"
JOB = "tenant/contoso"
WAIT = 20.0  # generous: each step takes well under a second
ANNA = PbxUser("anna", {"extension": "anna"})


@pytest.fixture
def pg_url(new_pg_database: Callable[[], str]) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database both nodes share."""
    return new_pg_database()


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    """A migrated PostgreSQL store that knows the SIP connection (as `serve` declares it)."""
    url = pg_url
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    async with store.transaction() as tx:
        await tx.pbx_connections.create(PbxConnectionSpec(NAME, "sip"))
    yield store
    await store.close()


async def until(check: Callable[[], Any], what: str) -> None:
    """Wait (bounded, wall time) until `check()` holds; awaits it when it is a coroutine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached in {WAIT:.0f} s: {what}")
        await asyncio.sleep(0.05)


async def stored_etag(store: Store) -> str | None:
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        records = await tx.sip_publications.load(row.id, now=datetime.now(UTC))
    return next((r.etag for r in records if r.key == "anna"), None)


def tuples(body: bytes) -> int:
    """How many publications Kamailio aggregated into a NOTIFY body (ours: one tuple each)."""
    return len(ET.fromstring(body).findall(f"{{{NS_PIDF}}}tuple")) if body else 0


def node(store: Store, server: KamailioServer) -> tuple[LeasedSipConnection, Ownership]:
    ownership = Ownership(store, JOB)
    connection = LeasedSipConnection(NAME, options(server), store, SystemClock(), ownership)
    connection.keeper.save_delay = 0.05
    return connection, ownership


async def test_the_new_holder_modifies_the_old_holder_s_publication_and_the_stale_one_is_mute(
    kamailio: KamailioServer, store: Store,
) -> None:
    leases = StoreLeases(store)
    a, a_owns = node(store, kamailio)
    b, b_owns = node(store, kamailio)
    watcher = RawWatcher(kamailio, "sip:anna@127.0.0.1", "watcher", "unused")
    watcher.subscription.expires = 600
    await watcher.start()
    a_may_act = True
    try:
        # Both nodes start; neither holds the tenant yet: a standby connection sends nothing.
        await a.start()
        await b.start()
        assert b.status().state is ConnectionState.STOPPED and b.publications() == {}
        await b.set_presence(ANNA, PbxPresence.BUSY, "from a standby")
        await asyncio.sleep(0.5)
        assert not any(b"from a standby" in body for body in watcher.bodies)

        # node-a holds the tenant and publishes dnd.
        first = await leases.acquire(JOB, "node-a", 30.0)
        assert first is not None and first.epoch == 1
        a_owns.lease = first
        await a.take_over(lambda: a_may_act)
        await a.set_presence(ANNA, PbxPresence.DND, "by node-a")
        await until(lambda: any(b"by node-a" in body for body in watcher.bodies), "dnd shown")
        a_etag = a.publication_etags()["anna"]
        await until(lambda: _is(stored_etag(store), a_etag), "node-a's ETag saved")

        # node-a pauses past its lease; node-b takes the tenant over (epoch 2) and restores
        # the stored publication: its first PUBLISH modifies it (SIP-If-Match).
        a_may_act = False  # what LeaseKeeper.may_act() answers once the deadline passed
        assert await leases.release(first)  # as good as expired, for the test's speed
        second = await leases.acquire(JOB, "node-b", 30.0)
        assert second is not None and second.epoch == 2
        b_owns.lease = second
        shown_before = len(watcher.bodies)
        await b.take_over(lambda: True)
        assert b.publication_etags() == {"anna": a_etag}
        await until(lambda: b.status().state is ConnectionState.CONNECTED, "node-b connected")
        await b.set_presence(ANNA, PbxPresence.DND, "by node-b")
        await until(lambda: any(b"by node-b" in body for body in watcher.bodies),
                    "node-b's publication shown")
        b_etag = b.publication_etags()["anna"]
        assert b_etag != a_etag
        await until(lambda: _is(stored_etag(store), b_etag), "node-b's ETag saved")
        # No moment without the person's dnd, and exactly one publication: the old one,
        # modified (a fresh PUBLISH would have added a second tuple).
        after = watcher.bodies[shown_before:]
        assert after and all(b"dnd" in body for body in after), after
        assert tuples(watcher.bodies[-1]) == 1

        # node-a resumes, stale: a change reaching it is not published, its ETags are not
        # written (the database refuses its epoch), and it withdraws nothing.
        shown_now = len(watcher.bodies)
        await a.set_presence(ANNA, PbxPresence.AWAY, "stale node-a")
        a.keeper.forget()  # its next save rewrites everything it holds: node-a's old ETag
        with pytest.raises(FencedOut, match="'node-b' holds it at epoch 2"):
            await a.keeper.save()
        # node-b's ETag (it changes with each of node-b's refreshes), never node-a's.
        assert await stored_etag(store) not in (None, a_etag)
        await a.hand_over(clean=False)  # the keeper noticed the loss
        await asyncio.sleep(1.0)
        assert watcher.bodies[shown_now:] == [] or all(
            b"by node-b" in body for body in watcher.bodies[shown_now:])
        await until(lambda: _is(stored_etag(store), b.publication_etags()["anna"]),
                    "node-b's current ETag kept")

        # node-b still publishes; a change shows as a modify of the one publication.
        await b.set_presence(ANNA, PbxPresence.AWAY, "later, by node-b")
        await until(lambda: any(b"later, by node-b" in body for body in watcher.bodies),
                    "node-b's change shown")
        assert tuples(watcher.bodies[-1]) == 1
    finally:
        await watcher.close()
        await b.stop()
        await a.stop()


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)

