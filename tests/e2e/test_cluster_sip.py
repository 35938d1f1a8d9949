"""A SIP connection on several real `m365pbx serve` processes (issue 25): only the node
holding the tenant publishes to Kamailio; kill -9 it and the node taking over modifies its
publications (SIP-If-Match from the store) without a moment of "closed" for a watcher;
a holder paused with SIGSTOP and resumed neither publishes nor overwrites the stored
ETags; a clean stop (a rolling restart) leaves the publications to the next holder.

The simulator runs in this process (its clock stands still); the nodes run on real time,
lease lifetime 3 s, and this worktree's code (PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import signal
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from m365pbx.pbx.sip.pidf import NS_PIDF
from m365pbx.store import Store, load_secret_box
from m365sim.server import RunningServer
from tests.e2e.harness import in_teams
from tests.e2e.test_cluster_processes import Node, holds, stands_by, until
from tests.pbx.sip.conftest import own_kamailio, sip_tools
from tests.pbx.sip.helpers import RawWatcher
from tests.pbx.sip.kamailio import KamailioServer
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

__all__ = ["own_kamailio", "sip_tools"]  # fixtures used below

pytestmark = pytest.mark.postgres

SRC = str(Path(__file__).resolve().parents[2] / "src")
CONNECTION = "office-sip"
PBX_PART = f"pbx/{CONNECTION}"
ANNA = "anna@contoso.com"
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}
AWAY = {"preferred": {"availability": "Away", "activity": "Away"}}
BUSY = {"preferred": {"availability": "Busy", "activity": "Busy"}}


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


class SipNode(Node):
    """A node whose PBX connection is SIP, to the test's Kamailio, running this worktree."""

    def __init__(self, name: str, tmp: Path, server: RunningServer, url: str,
                 kamailio: KamailioServer, run: int = 1) -> None:
        super().__init__(name, tmp, server, url, run)
        users = tmp / "sip-users.csv"
        users.write_text("h323;cn;extension\nanna;Anna Schmidt;anna\nben;Ben Weber;ben\n")
        config = yaml.safe_load(self.config.read_text())
        config["pbx_connections"] = [{
            "name": CONNECTION, "kind": "sip", "tenant": "contoso", "users_file": str(users),
            "settings": {"server": f"127.0.0.1:{kamailio.port}", "domain": "127.0.0.1"}}]
        self.config.write_text(yaml.safe_dump(config))

    async def start(self) -> None:
        """Start `m365pbx serve` on this worktree's code."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
        env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.DEVNULL, stderr=log, env=env,
                cwd=self.dir)

    def command(self) -> list[str]:
        from tests.e2e.test_cluster_processes import M365PBX

        return [M365PBX, "serve", "-c", str(self.config)]

    async def pbx_state(self) -> str | None:
        part = await self.part(PBX_PART)
        return None if part is None else str(part["state"])


@pytest.fixture
async def watcher(own_kamailio: KamailioServer) -> AsyncIterator[RawWatcher]:
    """An independent watcher of Anna's presence: every NOTIFY body Kamailio sends it."""
    found = RawWatcher(own_kamailio, "sip:anna@127.0.0.1", "watcher", "unused")
    found.subscription.expires = 3600
    await found.start()
    yield found
    await found.close()


def tuples(body: bytes) -> int:
    """How many publications Kamailio aggregated into a NOTIFY body (ours: one tuple each)."""
    return len(ET.fromstring(body).findall(f"{{{NS_PIDF}}}tuple")) if body.strip() else 0


async def stored_etag(url: str, key_file: Path) -> str | None:
    """Anna's publication ETag as the nodes saved it."""
    store = Store.open(url, load_secret_box(key_file=key_file, environ={}))
    try:
        async with store.transaction() as tx:
            row = await tx.pbx_connections.find(CONNECTION)
            if row is None:
                return None
            records = await tx.sip_publications.load(row.id, now=datetime.now(UTC))
    finally:
        await store.close()
    return next((r.etag for r in records if r.key == "anna"), None)


async def test_sip_publications_follow_the_tenant_lease(
    sim_server: RunningServer, tmp_path: Path, cluster_url: str,
    own_kamailio: KamailioServer, watcher: RawWatcher,
) -> None:
    key_file = tmp_path / "secret.key"

    def node(name: str, run: int = 1) -> SipNode:
        return SipNode(name, tmp_path, sim_server, cluster_url, own_kamailio, run)

    def showing(word: bytes) -> bool:
        return bool(watcher.bodies) and word in watcher.bodies[-1]

    async def etag_other_than(old: str | None) -> bool:
        etag = await stored_etag(cluster_url, key_file)
        return etag is not None and etag != old

    a, b, again = node("node-a"), node("node-b"), node("node-a", run=2)
    try:
        await in_teams(sim_server, ANNA, DND)
        await a.start()
        await until(lambda: holds(a, 1), "node-a holds the tenant")
        await until(lambda: _true(showing(b"dnd")), "node-a publishes anna's dnd")
        await until(lambda: etag_other_than(None), "node-a saves the ETag")
        a_etag = await stored_etag(cluster_url, key_file)

        # node-b stands by: its SIP connection is off, it publishes and withdraws nothing.
        await b.start()
        await until(lambda: stands_by(b), "node-b stands by")
        assert await b.pbx_state() == "disabled"
        assert await a.pbx_state() == "ok"
        await asyncio.sleep(3)  # node-b's start-up, and a few polls of node-a
        assert await stored_etag(cluster_url, key_file) == a_etag
        assert "took over" not in b.log.read_text()
        assert showing(b"dnd") and tuples(watcher.bodies[-1]) == 1  # one publisher

        # kill -9 the holder: node-b takes the tenant over, restores anna's publication
        # and modifies it. The watcher never sees her without dnd, and sees one publication.
        seen = len(watcher.bodies)
        a.signal(signal.SIGKILL)
        await until(lambda: holds(b, 2), "node-b takes the tenant over")
        await until(lambda: etag_other_than(a_etag), "node-b modifies and saves anna's ETag")
        assert "office-sip: took over 1 saved SIP publications" in b.log.read_text()
        after = watcher.bodies[seen:]
        assert all(b"dnd" in body for body in after), after
        assert tuples(watcher.bodies[-1]) == 1
        # A change in Teams after the takeover reaches Kamailio through node-b.
        await in_teams(sim_server, ANNA, AWAY)
        await until(lambda: _true(showing(b"away")), "node-b publishes anna's away")
        assert tuples(watcher.bodies[-1]) == 1
        assert await b.pbx_state() == "ok"

        # node-b paused past its lease: the restarted node-a takes over (epoch 3).
        await again.start()
        await until(lambda: stands_by(again), "the restarted node-a stands by")
        b_etag = await stored_etag(cluster_url, key_file)
        seen = len(watcher.bodies)
        b.signal(signal.SIGSTOP)
        await until(lambda: holds(again, 3), "node-a takes the tenant over again")
        await until(lambda: etag_other_than(b_etag), "node-a modifies anna's publication")
        a_etag = await stored_etag(cluster_url, key_file)
        # node-b resumes, stale: it stops at once, publishes nothing, writes no ETag.
        b.signal(signal.SIGCONT)

        async def lost() -> bool:
            part = await b.part("lease/tenant/contoso")
            return part is not None and part["counters"]["losses"] == 1

        await until(lost, "node-b notices it lost the tenant")
        await until(lambda: _true("(lease lost)" in b.log.read_text()),
                    "node-b leaves the publications to node-a")
        await asyncio.sleep(2)
        assert await stored_etag(cluster_url, key_file) == a_etag
        assert all(b"away" in body for body in watcher.bodies[seen:]), watcher.bodies[seen:]
        assert await b.pbx_state() == "disabled"
        await in_teams(sim_server, ANNA, BUSY)
        await until(lambda: _true(showing(b"busy")), "node-a publishes anna's busy")
        assert tuples(watcher.bodies[-1]) == 1

        # A clean stop of the holder (a rolling restart): nothing withdrawn, node-b takes
        # over at once (the lease is released) and keeps the publication.
        seen = len(watcher.bodies)
        assert again.process is not None
        again.process.terminate()
        assert await asyncio.wait_for(again.process.wait(), 30) == 0
        await until(lambda: holds(b, 4), "node-b takes the tenant over after the clean stop")
        await until(lambda: etag_other_than(a_etag), "node-b modifies anna's publication")
        assert all(b"busy" in body for body in watcher.bodies[seen:]), watcher.bodies[seen:]
        assert tuples(watcher.bodies[-1]) == 1
    finally:
        await asyncio.gather(*(n.stop() for n in (a, b, again)))


async def _true(value: Any) -> bool:
    if asyncio.iscoroutine(value):
        value = await value
    if callable(value):
        value = value()
        if asyncio.iscoroutine(value):
            value = await value
    return bool(value)
