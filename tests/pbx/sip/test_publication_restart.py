"""A restarted m365pbx takes its SIP publications over: their ETags are kept in the store.

Real Kamailio, SIPp as the watcher, the SIP connection built by the service wiring
(`service.connections.build_connection` with a store), and a crash that is a real SIGKILL
of a child process running m365pbx's SIP side (tests/pbx/sip/crashing_m365pbx.py).
"""

from __future__ import annotations

import asyncio
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState
from m365pbx.pbx.sip.pidf import NS_PIDF
from m365pbx.store import (
    PbxConnectionSpec,
    SecretBox,
    SipPublicationRecord,
    Store,
    generate_key,
    upgrade_database,
)
from tests.pbx.sip.crashing_m365pbx import NAME, started, user
from tests.pbx.sip.helpers import WAIT
from tests.pbx.sip.kamailio import KamailioServer
from tests.pbx.sip.sipp import Watcher

ROOT = Path(__file__).resolve().parents[3]
ANYTHING = ".*"  # a watcher pattern that the first NOTIFY matches, even an empty one


@dataclass
class Database:
    """m365pbx's store on an SQLite file that two processes share."""

    url: str
    key: str
    store: Store


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated store that knows the SIP connection (as `serve` declares it at start)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}"
    await upgrade_database(url)
    key = generate_key()
    store = Store.open(url, SecretBox([key]))
    async with store.transaction() as tx:
        await tx.pbx_connections.create(PbxConnectionSpec(NAME, "sip"))
    yield Database(url, key, store)
    await store.close()


async def saved(store: Store, *, now: datetime | None = None) -> dict[str, SipPublicationRecord]:
    """The publications in the store that have not expired (at `now`)."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        records = await tx.sip_publications.load(row.id, now=now or datetime.now(UTC))
    return {record.key: record for record in records}


async def eventually(check: Callable[[], Awaitable[bool]], within: float = WAIT) -> None:
    """Poll an async `check` until it holds; TimeoutError after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)


async def watch(tmp_path: Path, server: KamailioServer, name: str, pattern: str) -> str:
    """What an independent watcher (SIPp) subscribing now is told, once it matches `pattern`."""
    watcher = Watcher(tmp_path, server.port, name, pattern)
    await watcher.start()
    run = await watcher.result()
    assert run.returncode == 0, (pattern, run.notify_bodies, run.output)
    return [body for body in run.notify_bodies if re.search(pattern, body)][-1]


async def nothing_saved(store: Store) -> bool:
    """True when the store holds no publication to take over."""
    return await saved(store) == {}


def tuples(body: str) -> int:
    """How many publications the server aggregated into a NOTIFY body (ours: one tuple each)."""
    return len(ET.fromstring(body).findall(f"{{{NS_PIDF}}}tuple"))


async def crash_after_publishing(
    database: Database, server: KamailioServer, name: str, presence: PbxPresence, note: str
) -> str:
    """Run m365pbx in a child process, let it publish, wait for the save, kill -9 it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.pbx.sip.crashing_m365pbx", database.url, database.key,
        str(server.port), name, presence.value, note,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if not line.startswith(b"published "):
            process.kill()
            problem = await process.stderr.read()
            pytest.fail(f"the child did not publish: {line!r} {problem.decode()[-2000:]}")
        etag = line.split()[1].decode()

        async def stored() -> bool:
            record = (await saved(database.store)).get(name)
            return record is not None and record.etag == etag

        # Saved because it changed (debounced), not by a clean stop: there is none.
        await eventually(stored)
    finally:
        if process.returncode is None:
            process.kill()  # SIGKILL: no withdrawal, no final save
        await process.wait()
    return etag


async def test_after_a_crash_the_first_publish_modifies_the_old_publication(
    kamailio: KamailioServer, tmp_path: Path, database: Database
) -> None:
    old_etag = await crash_after_publishing(
        database, kamailio, "rosa", PbxPresence.DND, "before the crash"
    )
    # The crash withdrew nothing: Kamailio still shows the old publication.
    assert "before the crash" in await watch(tmp_path, kamailio, "rosa", "before the crash")

    connection = await started(database.store, kamailio.port)
    try:
        # Taken over at start, before anything was published.
        assert connection.publication_etags() == {"rosa": old_etag}
        await connection.set_presence(user("rosa"), PbxPresence.AWAY, "after the restart")
        body = await watch(tmp_path, kamailio, "rosa", "rpid:away")
        # Exactly one publication: the old one, modified; its note and dnd are gone.
        assert tuples(body) == 1
        assert "after the restart" in body
        assert "before the crash" not in body and "dnd" not in body
        assert connection.status().state is ConnectionState.CONNECTED
        new_etag = connection.publication_etags()["rosa"]
        assert new_etag != old_etag

        async def new_etag_saved() -> bool:
            record = (await saved(database.store)).get("rosa")
            return record is not None and record.etag == new_etag

        await eventually(new_etag_saved)
        # Online removes the publication, and nothing is left behind (a second
        # publication made next to the old one would leave the old note showing here).
        await connection.set_presence(user("rosa"), PbxPresence.ONLINE, "")
        assert await watch(tmp_path, kamailio, "rosa", ANYTHING) == ""
        await eventually(lambda: nothing_saved(database.store))
    finally:
        await connection.stop()


async def save_directly(store: Store, record: SipPublicationRecord) -> None:
    """Put a publication into the store as an earlier run would have."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(NAME)
        assert row is not None
        await tx.sip_publications.save(row.id, [record], now=datetime.now(UTC))


@pytest.mark.parametrize(
    ("etag", "why"),
    [
        # Of Kamailio's own form but unknown (it crashed meanwhile, or it expired): 412.
        ("a.1764084000.4242.1.0", "412"),
        # Not of its form (a replaced server): Kamailio 5.6 answers 500 instead.
        ("etag-of-another-server", "500"),
    ],
)
async def test_an_etag_the_server_does_not_hold_is_replaced_by_a_fresh_publish(
    kamailio: KamailioServer, tmp_path: Path, database: Database, etag: str, why: str
) -> None:
    name = f"sam{why}"
    soon = datetime.now(UTC) + timedelta(minutes=5)
    await save_directly(database.store, SipPublicationRecord(name, etag, soon, user(name).fields))
    connection = await started(database.store, kamailio.port)
    try:
        assert connection.publication_etags() == {name: etag}
        await connection.set_presence(user(name), PbxPresence.DND, "published afresh")
        body = await watch(tmp_path, kamailio, name, "published afresh")
        assert tuples(body) == 1
        assert connection.status().state is ConnectionState.CONNECTED
        assert connection.publication_etags()[name] != etag
    finally:
        await connection.stop()


async def test_a_lapsed_publication_is_not_taken_over(
    kamailio: KamailioServer, database: Database
) -> None:
    now = datetime.now(UTC)
    lapsed = SipPublicationRecord("tina", "a.2.old", now - timedelta(seconds=1), {})
    await save_directly(database.store, lapsed)
    connection = await started(database.store, kamailio.port)
    try:
        assert connection.publication_etags() == {}
        assert await saved(database.store, now=now - timedelta(hours=1)) == {}  # purged
    finally:
        await connection.stop()


async def test_a_stop_while_the_server_is_down_keeps_the_publication_for_the_next_start(
    own_kamailio: KamailioServer, tmp_path: Path, database: Database
) -> None:
    connection = await started(database.store, own_kamailio.port)
    await connection.set_presence(user("ulla"), PbxPresence.DND, "before the stop")
    etag = connection.publication_etags()["ulla"]
    own_kamailio.stop()  # keeps its publications (db_text) unless its SIGTERM hangs
    await connection.stop()  # cannot withdraw: saves the ETag instead
    assert {k: r.etag for k, r in (await saved(database.store)).items()} == {"ulla": etag}
    own_kamailio.start()

    again = await started(database.store, own_kamailio.port)
    try:
        assert again.publication_etags() == {"ulla": etag}
        await again.set_presence(user("ulla"), PbxPresence.BUSY, "after the start")
        body = await watch(tmp_path, own_kamailio, "ulla", "after the start")
        assert tuples(body) == 1 and "before the stop" not in body
        await again.set_presence(user("ulla"), PbxPresence.ONLINE, "")
        assert await watch(tmp_path, own_kamailio, "ulla", ANYTHING) == ""
    finally:
        await again.stop()
