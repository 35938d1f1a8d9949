"""Several real `m365pbx serve` processes on one PostgreSQL database (issue 25): only the
node holding a tenant's lease polls; kill -9 the holder and another takes over after the
lease's expiry; a holder paused with SIGSTOP and resumed stops at once instead of acting
on the lease it lost meanwhile. The simulator runs in this process (its clock stands
still: tokens stay valid); the nodes run on real time, lease lifetime 3 s."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from m365pbx.store import Store, load_secret_box
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port, in_teams
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD, TENANT_ID
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

M365PBX = str(Path(sys.executable).with_name("m365pbx"))
WALL = 90.0  # generous: start-ups and takeovers take a few seconds on a busy machine
LEASE = "lease/tenant/contoso"
POLLING = "tenant/contoso/polling"
ACCOUNT = "svc-presence@contoso.com"
HANDOFF = "webhook/handoff"


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


class Node:
    """One `m365pbx serve` process: its configuration, its log file and its /healthz."""

    def __init__(self, name: str, tmp: Path, server: RunningServer, url: str,
                 run: int = 1, *, port: int | None = None,
                 webhooks_to: int | None = None,
                 cluster: dict[str, Any] | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.dir = tmp / f"{name}-{run}"
        self.dir.mkdir()
        users = tmp / "users.csv"
        users.write_text("h323,cn\nanna,Anna Schmidt\nben,Ben Weber\n")
        self.config = self.dir / "m365pbx.yaml"
        # Webhook mode: a service account, and Graph's notifications sent to one port.
        webhooks: dict[str, Any] = {} if webhooks_to is None else {
            "public_url": f"http://127.0.0.1:{webhooks_to}"}
        accounts = [] if webhooks_to is None else [
            {"upn": ACCOUNT, "credential": "graph", "sign_in": "password",
             "password": PASSWORD}]
        self.config.write_text(yaml.safe_dump({
            **webhooks,
            "database": {"url": url},
            "cluster": {"enabled": True, "node_id": name, "lease_lifetime": "3s",
                        **(cluster or {})},
            "secrets": {"key_file": str(tmp / "secret.key")},
            "listen": {"host": "127.0.0.1", "port": self.port},
            "microsoft": {"login_url": server.url, "graph_url": server.url,
                          "ca_file": str(server.ca_file)},
            "teams_to_pbx": {"min_poll_interval": "1s"},
            "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                         "credentials": [{"name": "graph", "client_id": APP_ID,
                                          "client_secret": APP_SECRET,
                                          "permissions": ["presence.read", "users.read"]}],
                         "service_accounts": accounts}],
            "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso",
                                 "users_file": str(users)}],
        }))
        self.log = self.dir / "stderr.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process (its log lines go to a file: a full pipe would block it)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                M365PBX, "serve", "-c", str(self.config), stdout=asyncio.subprocess.DEVNULL,
                stderr=log, env=env, cwd=self.dir)

    def signal(self, number: int) -> None:
        """Send the process a signal (SIGKILL, SIGSTOP, SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(number)

    async def part(self, name: str) -> dict[str, Any] | None:
        """One part of its /healthz, or None while it does not answer (yet)."""
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(f"http://127.0.0.1:{self.port}/healthz")
        except httpx.HTTPError:
            return None
        return next((p for p in answer.json()["parts"] if p["part"] == name), None)

    async def counter(self, part: str, name: str) -> int | None:
        """A counter of one of its parts, or None."""
        found = await self.part(part)
        return None if found is None else int(found["counters"].get(name, 0))

    async def stop(self) -> None:
        """End it whatever its state (a stopped process is continued first)."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 30)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (wall time, bounded) until `check()` holds: the state is in another process,
    so it is asked for again and again (its /healthz), as an admin's monitoring would."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WALL
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {WALL:.0f} s: {what}")


async def holds(node: Node, epoch: int) -> bool:
    part = await node.part(LEASE)
    return part is not None and part["counters"]["held"] == 1 and (
        part["counters"]["epoch"] == epoch)


async def stands_by(node: Node) -> bool:
    part = await node.part(LEASE)
    return part is not None and part["state"] == "ok" and part["counters"]["held"] == 0 and (
        part["counters"]["epoch"] > 0)


async def rounds(node: Node) -> int:
    return await node.counter(POLLING, "rounds") or 0


async def test_kill_and_pause_the_holder(sim_server: RunningServer, tmp_path: Path,
                                         cluster_url: str) -> None:
    a, b = (Node(name, tmp_path, sim_server, cluster_url) for name in ("node-a", "node-b"))
    again = Node("node-a", tmp_path, sim_server, cluster_url, run=2)  # node-a restarted
    nodes = (a, b, again)
    try:
        await a.start()
        await until(lambda: holds(a, 1), "node-a holds the tenant")
        await until(lambda: _grown(a, 0), "node-a polls")
        await b.start()
        await until(lambda: stands_by(b), "node-b stands by")
        polled = await rounds(a)
        await until(lambda: _grown(a, polled + 2), "node-a polls on")
        assert await rounds(b) == 0  # only the holder polls

        # kill -9: nothing is released; node-b takes over once the lease expired.
        a.signal(signal.SIGKILL)
        await until(lambda: holds(b, 2), "node-b takes the tenant over")
        await until(lambda: _grown(b, 0), "node-b polls")

        await again.start()
        await until(lambda: stands_by(again), "the restarted node-a stands by")

        # node-b paused past its expiry: node-a takes over; node-b, resumed, stops at once.
        b.signal(signal.SIGSTOP)
        await until(lambda: holds(again, 3), "node-a takes the tenant over again")
        b.signal(signal.SIGCONT)

        async def lost() -> bool:
            part = await b.part(LEASE)
            return part is not None and part["counters"]["losses"] == 1 and (
                part["counters"]["held"] == 0)

        await until(lost, "node-b notices it lost the tenant")
        log = b.log.read_text()
        assert "node-b stopped working on tenant/contoso: " in log
        assert ("ran out while this node was not running" in log
                or "took the job over at epoch 3" in log)
        stale = await rounds(b)
        polled = await rounds(again)
        await until(lambda: _grown(again, polled + 2), "node-a polls")
        assert await rounds(b) == stale  # node-b no longer polls
        assert await holds(again, 3)  # and never took the lease back
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))
    box = load_secret_box(key_file=tmp_path / "secret.key", environ={})
    store = Store.open(cluster_url, box)
    try:
        async with store.transaction() as tx:
            leases = [(lease.job, lease.holder, lease.epoch) for lease in await tx.leases.all()]
    finally:
        await store.close()
    assert leases == [("tenant/contoso", "node-a", 3)]


async def _grown(node: Node, beyond: int) -> bool:
    return await rounds(node) > beyond


async def test_kill_the_holder_and_the_next_one_takes_the_waiting_notifications(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,
) -> None:
    # Graph (the simulator) posts every notification to node-b, as a load balancer might.
    allow_loopback_webhooks(sim)
    # The nodes check the validation tokens of rich notifications on their own (real)
    # clocks: the simulator's must show the same time, as Microsoft's does.
    clock.set(datetime.now(UTC))
    b_port = free_port()
    a = Node("node-a", tmp_path, sim_server, cluster_url, webhooks_to=b_port)
    b = Node("node-b", tmp_path, sim_server, cluster_url, port=b_port, webhooks_to=b_port)
    try:
        await a.start()
        await until(lambda: holds(a, 1), "node-a holds the tenant")
        await b.start()
        await until(lambda: stands_by(b), "node-b stands by")

        async def subscribed() -> bool:
            part = await a.part(f"tenant/contoso/subscription/{ACCOUNT}")
            return part is not None and part["state"] == "ok"

        await until(subscribed, "node-a's presence subscription is up")

        async def counted(node: Node, name: str, at_least: int) -> bool:
            return (await node.counter(HANDOFF, name) or 0) >= at_least

        # Posted to node-b, checked there, taken by node-a.
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await until(lambda: counted(b, "handed_off", 1), "node-b hands the notification on")
        await until(lambda: counted(a, "taken", 1), "node-a takes it")

        # node-a paused: what node-b hands on now waits in the database...
        a.signal(signal.SIGSTOP)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await until(lambda: counted(b, "handed_off", 2), "node-b hands the next one on")
        await until(lambda: counted(b, "backlog", 1), "it waits for node-a")
        # ...and after kill -9, the node taking the tenant over drains it.
        a.signal(signal.SIGKILL)
        await until(lambda: holds(b, 2), "node-b takes the tenant over")
        await until(lambda: counted(b, "taken", 1), "node-b takes what waited")
        assert await b.counter(HANDOFF, "backlog") == 0
        assert await b.counter(HANDOFF, "expired") == 0
    finally:
        await asyncio.gather(*(node.stop() for node in (a, b)))
