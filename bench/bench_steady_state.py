"""Steady state on the virtual clock: Graph requests per hour (webhook mode) and staleness in
polling mode, counted from the simulator's request log.

m365pbx and the simulator share one process and one virtual clock (the simulator served
over TLS on 127.0.0.1, real MSAL), as in the end-to-end tests. Time advances in small steps,
and after each step the benchmark waits until m365pbx has finished what the step started
(polling round, notifications, hub writes), so virtual times are what m365pbx would achieve
with Graph answering at once: this machine's speed does not stretch them.

1. Webhook mode, 2,000 people over 4 service accounts, rich notifications, reconciliation
   every 5 minutes, directory sync hourly: after start-up, one simulated hour in which each
   person changes presence `--changes-per-hour` times. Reported: Graph requests per hour per
   1,000 people, by kind, and the requests to Entra ID (tokens, signing keys) that hour.
2. Polling mode (no public URL), 2,000 and 20,000 people (`--polling-people`, comma
   separated): `--polling-minutes` simulated minutes with one presence change per second at
   random, the clock in 0.1 s steps. Staleness is the virtual time from the change in the
   simulator to the PBX side showing it (p50/p99/max; goals: p99 under 3 s for 2,000, under
   10 s for 20,000). The request rate is the most presence reads in any 30 s window against
   the limit, Graph's 1,500 per 30 s per app and tenant, where one getPresencesByUserId call
   of up to 650 ids is one request (goal: within a fifth). The limit of staleness at the
   pace the budget allows is printed beside it: with Graph answering at once a change waits
   at most one interval, so `staleness_floor_p99_s` is 0.99 of the interval.

Prints one JSON line. Run: .venv/bin/python bench/bench_steady_state.py
[--webhook-people 2000] [--changes-per-hour 2] [--polling-people 2000,20000]
[--polling-minutes 5] [--skip-webhook]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.api.connection import ApiConnection, ShownPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.store import load_secret_box
from m365sim.clock import VirtualClock
from m365sim.directory.changes import create_user
from m365sim.directory.generate import generate_users
from m365sim.model import Tenant, User
from m365sim.presence.states import client_state
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer, run_server
from m365sim.simulator import SimSettings, Simulator
from m365sim.subscriptions.delivery import Dispatcher

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "bench~secret~value"
PASSWORD = "bench password"
PRESENCE_BUDGET = 1500  # presence reads per 30 s per app and tenant (graph.md 5)
# What a person does in their Teams client, and what the PBX side then shows.
CHANGES = [(("Busy", "Busy"), PbxPresence.BUSY), (("Away", "Away"), PbxPresence.AWAY),
           (("Busy", "InACall"), PbxPresence.ON_THE_PHONE),
           (("Available", "Available"), PbxPresence.ONLINE)]


def make_sim(clock: VirtualClock, people: int, accounts: int) -> tuple[Simulator, Tenant,
                                                                         list[User], list[str]]:
    """A simulator on the virtual clock with the app, service accounts and people."""
    sim = Simulator(clock, SimSettings(notification_latency_s=(0.0, 0.0)))
    load_scenario(sim, {"tenants": [{
        "id": TENANT, "name": "Contoso", "domains": ["contoso.com"],
        "apps": [{"app_id": APP, "name": "m365pbx", "secrets": [{"value": SECRET}],
                  "public_client": True,
                  "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
                  "application": ["User.Read.All", "Presence.ReadWrite.All"]}],
    }]})
    tenant = sim.directory.find_tenant(TENANT)
    assert tenant is not None
    upns = [f"svc{n}@contoso.com" for n in range(1, accounts + 1)]
    for upn in upns:
        create_user(sim, tenant, {"userPrincipalName": upn}).password = PASSWORD
    users = generate_users(sim, tenant, users=people, seed=7, teams_share=1.0,
                           disabled_share=0.0)
    sim.subscriptions.settings.allow_http_loopback = True
    sim.settings.extra["notification_allow_http_loopback"] = True
    return sim, tenant, users, upns


def settings_file(server: RunningServer, tmp: Path, accounts: list[str], *,
                  webhook: bool) -> Path:
    """m365pbx's configuration file for the simulated tenant and one API connection."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'state.db'}"},
        "secrets": {"key_file": str(tmp / "secret.key")},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "listen": {"host": "127.0.0.1", "port": port},
        "tenants": [{
            "name": "contoso", "tenant_id": TENANT,
            "credentials": [{"name": "graph", "client_id": APP, "client_secret": SECRET,
                             "permissions": ["presence.read", "presence.write",
                                             "users.read"]}],
            "service_accounts": [{"upn": upn, "credential": "graph", "sign_in": "password",
                                  "password": PASSWORD} for upn in accounts],
        }],
        "pbx_connections": [{"name": "pbx", "kind": "api", "tenant": "contoso",
                             "matching": {"rules": ["h323=mailNickname"]}}],
    }
    if webhook:
        data["public_url"] = f"http://127.0.0.1:{port}"
    path = tmp / "m365pbx.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Driver:
    """Runs m365pbx against the simulator on the virtual clock, step by step."""

    def __init__(self, sim: Simulator, clock: VirtualClock, service: Service) -> None:
        self.sim = sim
        self.clock = clock
        self.service = service
        self.busy = 0
        parts = service.tenants["contoso"].parts
        for name in ("poll_once", "poll_uncovered"):
            setattr(parts.poller, name, self._counted(getattr(parts.poller, name)))

    def _counted(self, call: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
        async def counted() -> int:
            self.busy += 1
            try:
                return await call()
            finally:
                self.busy -= 1
        return counted

    async def settle(self) -> None:
        """Wait (in wall time) until what the last step started is done."""
        for _ in range(3):
            await asyncio.sleep(0)
        while True:
            if not self._working():
                await self.service.hub.settled()
                await asyncio.sleep(0.002)
                if not self._working():
                    return
            await asyncio.sleep(0.002)

    def _working(self) -> bool:
        """A polling round, a queued notification or a delivery of the simulator is pending."""
        queue = self.service.receiver._queue
        queued = queue.qsize() if isinstance(queue, asyncio.Queue) else len(queue)
        return bool(self.busy or queued or dispatcher_busy(self.sim.subscriptions.dispatcher))

    async def run_for(self, seconds: float, step: float,
                      each: Callable[[], None] | None = None) -> None:
        """Advance the virtual clock by `seconds` in steps, settling after each."""
        end = self.clock.now().timestamp() + seconds
        while self.clock.now().timestamp() < end:
            if each is not None:
                each()
            await self.clock.advance(step)
            await self.settle()

    async def until(self, check: Callable[[], bool], limit: float, what: str) -> None:
        """Step the clock one second at a time until `check()` (bounded in wall time)."""
        deadline = time.perf_counter() + limit
        while not check():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{what} did not happen within {limit} s")
            await self.clock.advance(1.0)
            await self.settle()


def dispatcher_busy(dispatcher: Dispatcher) -> bool:
    """Whether the simulator still has notifications due now or being posted."""
    due = dispatcher._heap and dispatcher._heap[0][0] <= dispatcher.clock.now()
    return bool(dispatcher._senders or due
                or any(endpoint.ready for endpoint in dispatcher.endpoints.values()))


async def started_service(sim: Simulator, clock: VirtualClock, server: RunningServer,
                          tmp: Path, accounts: list[str], users: list[User], *,
                          webhook: bool) -> tuple[Service, asyncio.Task[None], Driver]:
    """m365pbx running with everyone matched and the first round done."""
    settings = load_config(settings_file(server, tmp, accounts, webhook=webhook), environ={})
    box = load_secret_box(key_file=settings.secrets.key_file, environ={})
    service = Service(settings, box, ServiceOptions(clock=clock))
    running = asyncio.create_task(service.run())
    await service.started.wait()
    driver = Driver(sim, clock, service)
    pbx = service.connections["pbx"]
    assert isinstance(pbx, ApiConnection)
    pbx.replace_users([PbxUser(u.mail_nickname or "", {"cn": u.display_name}) for u in users])
    parts = service.tenants["contoso"].parts
    pool = parts.pool
    await driver.until(lambda: len(service.hub.people()) == len(users)
                       and parts.poller.rounds >= 1
                       and (pool is None or all(o.healthy and o.people
                                                for o in pool.owners.values())),
                       300, "the start-up")
    return service, running, driver


def graph_requests(sim: Simulator, since: datetime) -> Counter[str]:
    """Requests since `since` by kind: Graph method and path shape, or the token endpoint."""
    kinds: Counter[str] = Counter()
    for record in sim.faults.requests():
        if datetime.fromisoformat(record["time"]) < since:
            continue
        path = str(record["path"])
        if path.startswith("/v1.0/"):
            parts = path[5:].split("/")
            if parts[1] == "subscriptions" and len(parts) > 2:
                parts[2] = "{id}"
            kind = f"{record['method']} {'/'.join(parts)}"
        else:  # Entra ID: token endpoint, signing keys, discovery
            kind = "entra " + path.replace(TENANT, "{tenant}")
        kinds[kind] += 1
    return kinds


async def webhook_hour(people: int, changes_per_hour: float) -> dict[str, Any]:
    """Graph requests per hour per 1,000 people in webhook mode."""
    clock = VirtualClock()
    accounts = math.ceil(people / 650)
    sim, tenant, users, upns = make_sim(clock, people, accounts)
    rng = random.Random(1)  # reproducible load
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server:
            service, running, driver = await started_service(sim, clock, server, tmp, upns,
                                                             users, webhook=True)
            try:
                since = clock.now()
                step = 5.0
                per_step = people * changes_per_hour * step / 3600

                def change() -> None:
                    for _ in range(int(per_step) + (rng.random() < per_step % 1)):
                        user = rng.choice(users)
                        (availability, activity), _ = rng.choice(CHANGES)
                        state = client_state(availability, activity)
                        assert state is not None
                        sim.presence.set_client_state(tenant.id, user.id, state)

                await driver.run_for(3600, step, change)
                kinds = graph_requests(sim, since)
                accepted = service.receiver.counters["accepted"]
            finally:
                service.stop()
                await running
    graph = {k: v for k, v in kinds.items() if not k.startswith("entra ")}
    per_thousand = 1000 / people
    return {
        "webhook_people": people, "webhook_accounts": accounts,
        "webhook_notifications": accepted,
        "graph_requests_per_hour_per_1000": round(sum(graph.values()) * per_thousand, 1),
        "graph_requests_by_kind_per_hour_per_1000": {
            k: round(v * per_thousand, 1) for k, v in sorted(graph.items())},
        "entra_requests_per_hour": {k[6:]: v for k, v in sorted(kinds.items())
                                    if k.startswith("entra ")},
    }


async def polling_staleness(people: int, minutes: float) -> dict[str, Any]:
    """Staleness and presence reads per 30 s in polling mode, against their limits."""
    clock = VirtualClock()
    sim, tenant, users, upns = make_sim(clock, people, 1)
    rng = random.Random(2)  # reproducible load
    pending: dict[str, tuple[PbxPresence, float]] = {}
    staleness: list[float] = []
    current: dict[str, PbxPresence] = {}

    def shown(event: ShownPresence) -> None:
        wanted = pending.get(event.key)
        if wanted is not None and event.state.presence is wanted[0]:
            staleness.append(clock.now().timestamp() - wanted[1])
            del pending[event.key]

    with tempfile.TemporaryDirectory(prefix="bench-steady-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server:
            service, running, driver = await started_service(sim, clock, server, tmp, upns,
                                                             users, webhook=False)
            try:
                pbx = service.connections["pbx"]
                assert isinstance(pbx, ApiConnection)
                pbx.on_shown(shown)
                since = clock.now()
                step, per_second = 0.1, 1.0

                def change() -> None:
                    if rng.random() >= per_second * step:
                        return
                    user = rng.choice(users)
                    key = user.mail_nickname or ""
                    if key in pending:
                        return
                    before = current.get(key, PbxPresence.ONLINE)
                    (availability, activity), presence = rng.choice(
                        [c for c in CHANGES if c[1] is not before])
                    state = client_state(availability, activity)
                    assert state is not None
                    sim.presence.set_client_state(tenant.id, user.id, state)
                    current[key] = presence
                    pending[key] = (presence, clock.now().timestamp())

                await driver.run_for(minutes * 60, step, change)
                await driver.run_for(30, step)  # let the last changes arrive
                reads = sorted(datetime.fromisoformat(r["time"]).timestamp()
                               for r in sim.faults.requests()
                               if r["bucket"] == "presence-read"
                               and datetime.fromisoformat(r["time"]) >= since)
                interval = service.tenants["contoso"].parts.poller.interval()
            finally:
                service.stop()
                await running
    busiest = max((sum(1 for t in reads if start <= t < start + 30) for start in reads),
                  default=0)
    return {
        "people": people, "minutes": minutes,
        "interval_s": round(interval, 2),
        "changes": len(staleness), "not_shown": len(pending),
        "staleness_p50_s": round(statistics.median(staleness), 2),
        "staleness_p99_s": round(sorted(staleness)[max(0, math.ceil(0.99 * len(staleness))
                                                       - 1)], 2),
        "staleness_max_s": round(max(staleness), 2),
        "staleness_floor_p99_s": round(0.99 * interval, 2),
        "presence_reads_per_30s_max": busiest,
        "presence_limit_per_30s": PRESENCE_BUDGET,
        "presence_budget_share_max": round(busiest / PRESENCE_BUDGET, 4),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements."""
    started = time.perf_counter()
    result: dict[str, Any] = {"bench": "steady_state"}
    if not args.skip_webhook:
        result.update(await webhook_hour(args.webhook_people, args.changes_per_hour))
    result["polling"] = [await polling_staleness(int(people), args.polling_minutes)
                         for people in args.polling_people.split(",")]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhook-people", type=int, default=2000)
    parser.add_argument("--changes-per-hour", type=float, default=2.0)
    parser.add_argument("--polling-people", default="2000,20000")
    parser.add_argument("--polling-minutes", type=float, default=5.0)
    parser.add_argument("--skip-webhook", action="store_true")
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
