"""Notification received → PBX connection called: latency at 1,000 rich notifications per second.

The simulator (wall clock, zero latency, TLS on 127.0.0.1) plays Entra ID and Graph; m365pbx
runs in the same process in webhook mode with the built-in API connection as the PBX, signs
its service accounts in with the real MSAL and creates its presence subscriptions as usual.
Then the benchmark builds rich notification bodies exactly as the simulator delivers them
(encrypted content for m365pbx's certificate, a validation token) and POSTs them, one
notification per POST (Graph's worst case, no batching), to m365pbx's webhook route
in-process (httpx.ASGITransport) at a steady rate. Each one changes a person's presence.

Before measuring, `gc.freeze()` moves everything made at start-up (the simulator's tenant
included, which shares this process only because of the benchmark) out of the cyclic
garbage collector's reach: without it a full collection over that heap stalls the loop for
50-100 ms now and then (`--no-gc-freeze` shows it).

Latency is measured from the moment the POST reaches the web app (an ASGI wrapper stamps
it) to the moment the hub calls the API connection's `set_presence` for that person. It
includes checking the client state and the validation token, queueing, decryption, the
policy and the hub's worker; it excludes the network and Graph's own delay (typically
seconds: graph.md 4.5). `answer_*` is the time until the webhook answered 202.

Prints one JSON line: {"bench": "notify_latency", "people", "rate_per_s", "gc_freeze",
"notifications", "measured" (fewer when two changes of a person went out as one write),
"sent_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "answer_p50_ms", "answer_p99_ms",
"peak_rss_mb"}.
Run: .venv/bin/python bench/bench_notify_latency.py [--people 1000] [--rate 1000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import resource
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.types import ASGIApp, Receive, Scope, Send

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.store import load_secret_box
from m365sim.directory.changes import create_user
from m365sim.directory.generate import generate_users
from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer, run_server
from m365sim.simulator import SimSettings, Simulator
from m365sim.subscriptions.payloads import change_item
from m365sim.subscriptions.resources import Kind

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "bench~secret~value"
PASSWORD = "bench password"
STATES = [("Busy", "Busy"), ("Away", "Away"), ("DoNotDisturb", "DoNotDisturb"),
          ("Available", "Available")]


def make_sim(people: int) -> tuple[Simulator, Tenant, list[User], list[str]]:
    """A wall-clock simulator: the app, one service account per 650 people, the people."""
    sim = Simulator(settings=SimSettings(notification_latency_s=(0.0, 0.0)))
    load_scenario(sim, {"tenants": [{
        "id": TENANT, "name": "Contoso", "domains": ["contoso.com"],
        "apps": [{"app_id": APP, "name": "m365pbx", "secrets": [{"value": SECRET}],
                  "public_client": True,
                  "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
                  "application": ["User.Read.All", "Presence.ReadWrite.All"]}],
    }]})
    tenant = sim.directory.find_tenant(TENANT)
    assert tenant is not None
    accounts = [f"svc{n}@contoso.com" for n in range(1, math.ceil(people / 650) + 1)]
    for upn in accounts:
        create_user(sim, tenant, {"userPrincipalName": upn}).password = PASSWORD
    users = generate_users(sim, tenant, users=people, seed=3, teams_share=1.0,
                           disabled_share=0.0)
    sim.subscriptions.settings.allow_http_loopback = True
    sim.settings.extra["notification_allow_http_loopback"] = True
    return sim, tenant, users, accounts


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_settings(server: RunningServer, tmp: Path, accounts: list[str], *,
                   webhook: bool, **teams_to_pbx: str) -> Path:
    """m365pbx's configuration file for the simulated tenant and one API connection."""
    port = free_port()
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'state.db'}"},
        "secrets": {"key_file": str(tmp / "secret.key")},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "listen": {"host": "127.0.0.1", "port": port},
        "teams_to_pbx": teams_to_pbx,
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


async def wait_for(check: Callable[[], bool], limit: float, what: str) -> None:
    """Poll `check` every 20 ms until it holds (at most `limit` seconds)."""
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} did not happen within {limit} s")
        await asyncio.sleep(0.02)


class Stamped:
    """An ASGI wrapper noting when each POST reached the web app, by the person it is for."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.received: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-bench-person":
                    self.received[value.decode()] = time.perf_counter()
        await self.app(scope, receive, send)


def timed(connection: ApiConnection, received: dict[str, float],
          latencies: list[float]) -> None:
    """Wrap the connection's set_presence to measure each call against its receipt."""
    original = connection.set_presence

    async def set_presence(user: PbxUser, presence: PbxPresence, note: str) -> None:
        started = received.pop(user.key, None)
        if started is not None:
            latencies.append(time.perf_counter() - started)
        await original(user, presence, note)

    connection.set_presence = set_presence  # type: ignore[method-assign]


def bodies_for(sim: Simulator, users: list[User], count: int) -> list[tuple[str, bytes]]:
    """`count` single-notification bodies, round robin over the people, each a change."""
    now = sim.clock.now()
    subscription_of = {}
    for subscription in sim.subscriptions.subscriptions.values():
        if subscription.kind is Kind.PRESENCE and subscription.live(now):
            for user_id in subscription.target.user_ids or ():
                subscription_of[user_id] = subscription
    token = sim.subscriptions.tokens.token(APP, TENANT, now)
    made = []
    for index in range(count):
        user = users[index % len(users)]
        availability, activity = STATES[(index // len(users)) % len(STATES)]
        change = ResourceChange(
            tenant_id=TENANT, resource=f"communications/presences/{user.id}",
            change_type="updated", resource_id=user.id, odata_type="#microsoft.graph.presence",
            odata_id=f"users/{user.id}/presence",
            resource_data={"@odata.type": "#microsoft.graph.presence",
                           "@odata.id": f"users/{user.id}/presence", "id": user.id,
                           "availability": availability, "activity": activity},
        )
        item = change_item(subscription_of[user.id], change)
        body = json.dumps({"value": [item], "validationTokens": [token]}).encode()
        made.append((user.mail_nickname or "", body))
    return made


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def send_all(app: ASGIApp, path: str, bodies: list[tuple[str, bytes]],
                   rate: float) -> tuple[float, list[float]]:
    """POST the bodies at `rate` per second; the sending rate reached and the answer times."""
    answers: list[float] = []

    async def post(client: httpx.AsyncClient, key: str, body: bytes) -> None:
        started = time.perf_counter()
        response = await client.post(path, content=body, headers={
            "content-type": "application/json", "x-bench-person": key})
        answers.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m365pbx") as client:
        tasks: list[Awaitable[None]] = []
        start = time.perf_counter()
        for index, (key, body) in enumerate(bodies):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(post(client, key, body)))
        sent = len(bodies) / (time.perf_counter() - start)
        await asyncio.gather(*tasks)
    return sent, answers


async def main(people: int, rate: float, seconds: float, *, freeze: bool = True
               ) -> dict[str, Any]:
    """Start both sides, then measure."""
    sim, _, users, accounts = make_sim(people)
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server:
            path = write_settings(server, tmp, accounts, webhook=True, reconcile_interval="1h")
            settings = load_config(path, environ={})
            box = load_secret_box(key_file=settings.secrets.key_file, environ={})
            service = Service(settings, box, ServiceOptions())
            running = asyncio.create_task(service.run())
            try:
                await wait_for(service.started.is_set, 60, "the service start")
                pbx = service.connections["pbx"]
                assert isinstance(pbx, ApiConnection)
                pbx.replace_users([PbxUser(u.mail_nickname or "", {"cn": u.display_name})
                                   for u in users])
                pool = service.tenants["contoso"].parts.pool
                assert pool is not None
                await wait_for(lambda: len(service.hub.people()) == people and all(
                    o.healthy and o.people for o in pool.owners.values()), 120,
                    "the subscriptions")
                poller = service.tenants["contoso"].parts.poller
                await wait_for(lambda: poller.rounds >= 1, 60, "the first polling round")
                await service.hub.settled()
                count = int(rate * seconds)
                warm_up, *bodies = bodies_for(sim, users, count + 1)
                app = Stamped(service.web_app())
                # The first one alone: m365pbx fetches Entra's signing keys once.
                await send_all(app, settings.webhook_path, [warm_up], rate)
                await service.hub.settled()
                app.received.clear()
                if freeze:
                    gc.freeze()
                latencies: list[float] = []
                timed(pbx, app.received, latencies)
                sent, answers = await send_all(app, settings.webhook_path, bodies, rate)
                # A person's two notifications may meet in the hub and go out as one write
                # (the newer state); the older one's stamp is then replaced, not measured.
                await wait_for(lambda: not app.received, 60, "every PBX call")
            finally:
                service.stop()
                await running
    ms = [value * 1000 for value in latencies]
    answer_ms = [value * 1000 for value in answers]
    return {
        "bench": "notify_latency", "people": people, "rate_per_s": rate, "gc_freeze": freeze,
        "notifications": count, "measured": len(ms), "sent_per_s": round(sent, 1),
        "p50_ms": round(statistics.median(ms), 3), "p90_ms": round(percentile(ms, 0.9), 3),
        "p99_ms": round(percentile(ms, 0.99), 3), "max_ms": round(max(ms), 3),
        "answer_p50_ms": round(statistics.median(answer_ms), 3),
        "answer_p99_ms": round(percentile(answer_ms, 0.99), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the start-up objects to the cyclic garbage collector")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(args.people, args.rate, args.seconds,
                                      freeze=not args.no_gc_freeze))))
