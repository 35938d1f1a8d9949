"""Several real `m365pbx serve` nodes on one PostgreSQL database, behind a load balancer,
against a simulated Microsoft 365 on real time: the set-up of the cluster scale test
(tests/e2e/test_cluster_scale.py) and of the chaos soak (bench/soak.py).

The simulator runs in the calling process on the wall clock (the nodes check validation
tokens and subscription expiries on theirs). Tenant `contoso` is served by webhooks
(service accounts of 650 people each), tenant `fabrikam` is polled; each has one
built-in API connection whose users come from a file, matched by `h323=mailNickname`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from m365pbx.pbx.api.keys import Scope
from m365pbx.service.api_keys import create_api_client
from m365pbx.store import Store, load_secret_box
from m365sim.clock import WallClock
from m365sim.directory.changes import create_user
from m365sim.directory.generate import generate_users
from m365sim.model import Tenant, User
from m365sim.presence.states import client_state
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer
from m365sim.simulator import SimSettings, Simulator
from tests.e2e.harness import free_port

M365PBX = str(Path(sys.executable).with_name("m365pbx"))
CONTOSO_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
FABRIKAM_ID = "2f6b3a4e-8c1d-4e5f-9a7b-0c1d2e3f4a5b"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "cluster~rig~secret~value"
PASSWORD = "cluster rig password"
SIP_CONNECTION = "contoso-sip"
PER_ACCOUNT = 650  # people one service account's subscription covers (graph.md 4.4)
# What people do in Teams, as (availability, activity).
CHANGES = [("Busy", "Busy"), ("Away", "Away"), ("Busy", "InACall"),
           ("Available", "Available"), ("DoNotDisturb", "Presenting"),
           ("BeRightBack", "BeRightBack")]


@dataclass
class Scene:
    """The simulated Microsoft 365: the two tenants, their people and service accounts."""

    sim: Simulator
    contoso: Tenant
    fabrikam: Tenant
    people: list[User]
    polled: list[User]
    accounts: list[str]
    conflicts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.polled_ids = {user.id for user in self.polled}

    def change(self, user: User, rng: random.Random) -> None:
        """Make `user` show something else in Teams (their client)."""
        availability, activity = rng.choice(CHANGES)
        state = client_state(availability, activity)
        assert state is not None
        tenant = self.fabrikam if user.id in self.polled_ids else self.contoso
        self.sim.presence.set_client_state(tenant.id, user.id, state)

    def truth(self) -> dict[str, tuple[str, str]]:
        """What Teams shows for each person, by PBX key (their mailNickname)."""
        shown: dict[str, tuple[str, str]] = {}
        for tenant, users in ((self.contoso, self.people), (self.fabrikam, self.polled)):
            for user in users:
                body = self.sim.presence.read(tenant, user.id)
                assert body is not None
                shown[str(user.mail_nickname)] = (body["availability"], body["activity"])
        return shown


def make_scene(people: int, *, polled: int = 50, seed: int = 7,
               latency_s: tuple[float, float] = (0.0, 0.5)) -> Scene:
    """A simulator on the wall clock with both tenants, the app, accounts and people."""
    sim = Simulator(WallClock(), SimSettings(notification_latency_s=latency_s))
    app = {"app_id": APP_ID, "name": "m365pbx", "secrets": [{"value": SECRET}],
           "public_client": True,
           "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
           "application": ["User.Read.All", "Presence.ReadWrite.All"]}
    load_scenario(sim, {"tenants": [
        {"id": CONTOSO_ID, "name": "Contoso", "domains": ["contoso.com"], "apps": [app]},
        {"id": FABRIKAM_ID, "name": "Fabrikam", "domains": ["fabrikam.com"], "apps": [app]},
    ]})
    contoso = sim.directory.find_tenant(CONTOSO_ID)
    fabrikam = sim.directory.find_tenant(FABRIKAM_ID)
    assert contoso is not None and fabrikam is not None
    accounts = [f"svc{n}@contoso.com" for n in range(1, -(-people // PER_ACCOUNT) + 1)]
    for upn in accounts:
        create_user(sim, contoso, {"userPrincipalName": upn}).password = PASSWORD
    users = generate_users(sim, contoso, users=people, seed=seed, teams_share=1.0,
                           disabled_share=0.0)
    others = generate_users(sim, fabrikam, users=polled, seed=seed + 1, domain="fabrikam.com",
                            teams_share=1.0, disabled_share=0.0)
    sim.subscriptions.settings.allow_http_loopback = True
    sim.settings.extra["notification_allow_http_loopback"] = True
    scene = Scene(sim, contoso, fabrikam, users, others, accounts)
    _count_conflicts(scene)
    return scene


def _count_conflicts(scene: Scene) -> None:
    """Note every 409 "a subscription already exists" the simulator answers."""
    service = scene.sim.subscriptions
    check = service._check_presence_conflict

    def counted(caller: Any, target: Any) -> None:
        try:
            check(caller, target)
        except Exception:
            upn = str(getattr(caller.user, "user_principal_name", "?"))
            scene.conflicts.append(f"{upn} at {datetime.now(UTC).time()}")
            raise

    service._check_presence_conflict = counted  # type: ignore[method-assign]


def _users_file(path: Path, users: Iterable[User]) -> Path:
    lines = ["h323,cn"] + [f"{u.mail_nickname},{u.display_name}" for u in users]
    path.write_text("\n".join(lines) + "\n")
    return path


class Node:
    """One `m365pbx serve` process of the installation: configuration, log and /healthz."""

    def __init__(self, name: str, rig: Rig) -> None:
        self.name = name
        self.rig = rig
        self.port = free_port()
        self.runs = 0
        self.process: asyncio.subprocess.Process | None = None
        self.expected_down = True
        self.dir = rig.tmp / name
        self.dir.mkdir()
        self.config = self.dir / "m365pbx.yaml"
        self.config.write_text(yaml.safe_dump(rig.settings(name, self.port)))
        self.log = self.dir / "stderr.log"

    @property
    def url(self) -> str:
        """Where its web listener answers."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether its process is alive (it may be paused)."""
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        """Start the process (its log lines go to a file: a full pipe would block it)."""
        self.runs += 1
        self.expected_down = False
        env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
        with self.log.open("ab") as log:
            log.write(f"--- run {self.runs} ---\n".encode())
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                M365PBX, "serve", "-c", str(self.config), stdout=asyncio.subprocess.DEVNULL,
                stderr=log, env=env, cwd=self.dir)

    def signal(self, number: int) -> None:
        """Send the process a signal (SIGKILL, SIGSTOP, SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(number)

    async def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        self.expected_down = True
        if self.running:
            assert self.process is not None
            self.signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 30)

    async def stop(self) -> None:
        """A clean stop (SIGTERM), continued first if paused; kill -9 after 30 s."""
        self.expected_down = True
        if not self.running:
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await asyncio.wait_for(self.process.wait(), 30)

    async def health(self) -> dict[str, Any] | None:
        """Its /healthz, or None while it does not answer; a node that ended on its own
        fails the caller with the end of its log."""
        if not self.running and not self.expected_down:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{self.name} ended on its own:\n{tail}")
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                answer = await http.get(f"{self.url}/healthz")
            return dict(answer.json())
        except (httpx.HTTPError, ValueError):
            return None

    async def part(self, name: str) -> dict[str, Any] | None:
        """One part of its /healthz, or None."""
        health = await self.health()
        if health is None:
            return None
        return next((p for p in health["parts"] if p["part"] == name), None)

    async def holds(self, job: str) -> bool:
        """Whether it holds the lease of `job` (e.g. tenant/contoso) now."""
        part = await self.part(f"lease/{job}")
        return part is not None and part["counters"].get("held") == 1

    async def presence_map(self) -> dict[str, dict[str, dict[str, Any]]] | None:
        """Its presence API's map: connection → PBX key → both sides, or None."""
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(f"{self.url}/api/v1/presence",
                                        headers={"Authorization": f"Bearer {self.rig.key}"})
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        return dict(answer.json()["connections"])

    async def pbx_presence(self) -> dict[str, tuple[str, str]] | None:
        """What its presence API shows (availability, activity) by PBX key, or None."""
        connections = await self.presence_map()
        if connections is None:
            return None
        shown: dict[str, tuple[str, str]] = {}
        for people in connections.values():
            for key, value in people.items():
                shown[key] = (value.get("availability", ""), value.get("activity", ""))
        return shown


class Rig:
    """The installation: its nodes, their shared configuration and the balancer's port."""

    def __init__(self, scene: Scene, server: RunningServer, database_url: str, tmp: Path,
                 *, lease: str = "3s", public_port: int, reconcile: str = "1m") -> None:
        self.scene = scene
        self.server = server
        self.database_url = database_url
        self.tmp = tmp
        self.lease = lease
        self.public_port = public_port
        self.reconcile = reconcile
        self.key = ""
        self.contoso_users = _users_file(tmp / "contoso-users.csv", scene.people)
        self.fabrikam_users = _users_file(tmp / "fabrikam-users.csv", scene.polled)
        self.nodes: list[Node] = []
        self.sip_port: int | None = None  # a Kamailio for tenant contoso's first people
        self.sip_users: Path | None = None

    def add_sip(self, port: int, people: int) -> None:
        """Give tenant contoso a SIP connection to the Kamailio on `port` for its first
        `people` people (before the nodes are added: their files are written then)."""
        self.sip_port = port
        self.sip_users = _users_file(self.tmp / "contoso-sip-users.csv",
                                     self.scene.people[:people])

    def add_node(self, name: str) -> Node:
        """A node of the installation (not started)."""
        node = Node(name, self)
        self.nodes.append(node)
        return node

    def settings(self, name: str, port: int) -> dict[str, Any]:
        """One node's configuration file: the same for all but the name and port."""
        server = self.server
        def credential(name: str) -> dict[str, Any]:
            return {"name": name, "client_id": APP_ID, "client_secret": SECRET,
                    "permissions": ["presence.read", "presence.write", "users.read"]}

        matching = {"rules": ["h323=mailNickname"]}
        return {
            "public_url": f"http://127.0.0.1:{self.public_port}",
            "database": {"url": self.database_url},
            "cluster": {"enabled": True, "node_id": name, "lease_lifetime": self.lease},
            "secrets": {"key_file": str(self.tmp / "secret.key")},
            "listen": {"host": "127.0.0.1", "port": port},
            "microsoft": {"login_url": server.url, "graph_url": server.url,
                          "ca_file": str(server.ca_file)},
            "teams_to_pbx": {"reconcile_interval": self.reconcile},
            "tenants": [
                {"name": "contoso", "tenant_id": CONTOSO_ID,
                 "credentials": [credential("contoso-graph")],
                 "service_accounts": [{"upn": upn, "credential": "contoso-graph",
                                       "sign_in": "password", "password": PASSWORD}
                                      for upn in self.scene.accounts]},
                {"name": "fabrikam", "tenant_id": FABRIKAM_ID,
                 "credentials": [credential("fabrikam-graph")]},
            ],
            "pbx_connections": [
                {"name": "contoso-pbx", "kind": "api", "tenant": "contoso",
                 "users_file": str(self.contoso_users), "matching": matching},
                {"name": "fabrikam-pbx", "kind": "api", "tenant": "fabrikam",
                 "users_file": str(self.fabrikam_users), "matching": matching},
                *self._sip_connections(matching),
            ],
        }

    def _sip_connections(self, matching: dict[str, Any]) -> list[dict[str, Any]]:
        if self.sip_port is None:
            return []
        return [{"name": SIP_CONNECTION, "kind": "sip", "tenant": "contoso",
                 "users_file": str(self.sip_users), "matching": matching,
                 "settings": {"server": f"127.0.0.1:{self.sip_port}", "domain": "127.0.0.1",
                              "uri_template": "sip:{key}@{domain}"}}]

    async def create_api_key(self) -> None:
        """An API key with the read scope, in the shared database (any node accepts it).

        The first node must have migrated the database before this is called.
        """
        box = load_secret_box(key_file=self.tmp / "secret.key", environ={})
        store = Store.open(self.database_url, box)
        try:
            async with store.transaction() as tx:
                self.key = await create_api_client(tx, "monitor", {Scope.READ},
                                                   now=datetime.now(UTC), actor="test")
        finally:
            await store.close()

    async def holder(self, job: str) -> Node | None:
        """The running node that holds `job`, if one does."""
        for node in self.nodes:
            if node.running and await node.holds(job):
                return node
        return None

    async def stop(self) -> None:
        """Stop every node (cleanly where possible)."""
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def differences(self) -> dict[str, tuple[tuple[str, str], tuple[str, str] | None]]:
        """People whose PBX side differs from Teams: key → (Teams, PBX side or None).

        The PBX side of a tenant is read from the node that holds it.
        """
        shown: dict[str, tuple[str, str]] = {}
        for job in ("tenant/contoso", "tenant/fabrikam"):
            node = await self.holder(job)
            if node is not None:
                shown.update(await node.pbx_presence() or {})
        truth = self.scene.truth()
        return {key: (teams, shown.get(key)) for key, teams in truth.items()
                if shown.get(key) != teams}


async def until(check: Callable[[], Awaitable[bool]], what: str, *, wall: float) -> float:
    """Wait (wall time, bounded) until `check()` holds; the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < wall:
        if await check():
            return loop.time() - start
        await asyncio.sleep(0.25)
    raise AssertionError(f"not reached in {wall:.0f} s: {what}")


async def change_stream(scene: Scene, per_second: float, rng: random.Random,
                        changed: list[int]) -> None:
    """Change random people's presence in Teams at `per_second`, until cancelled."""
    everyone = scene.people + scene.polled
    while True:
        scene.change(rng.choice(everyone), rng)
        changed[0] += 1
        await asyncio.sleep(1 / per_second)


def tls_context(server: RunningServer) -> ssl.SSLContext:
    """Trust the simulator's certificate."""
    return ssl.create_default_context(cafile=str(server.ca_file))
