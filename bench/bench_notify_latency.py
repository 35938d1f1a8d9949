"""Notification received → PBX connection called: latency at 1,000 rich notifications per second.

The simulator (wall clock, zero latency, TLS on 127.0.0.1) plays Entra ID and Graph; m365pbx
runs in the same process in webhook mode with the built-in API connection as the PBX, signs
its service accounts in with the real MSAL and creates its presence subscriptions as usual.
Then the benchmark builds rich notification bodies exactly as the simulator delivers them
(encrypted content for m365pbx's certificate, a validation token) and POSTs them, one
notification per POST (Graph's worst case; `--batch N` puts N in each), straight into
m365pbx's web app as ASGI calls (no HTTP client sharing the loop: httpx cost more than
m365pbx's own work) at a steady rate. Each one changes a person's presence.

The limit, measured in the same run: one RSA-2048 unwrap per rich notification, done by
the decryption worker processes. `ceiling_per_s` = unwraps per second on one core (measured
in this process before the start) x worker processes; a rate above it can only build a
backlog, and `verdict` says so, so a slower CPU shows as a lower ceiling.

Before measuring, `gc.freeze()` moves everything made at start-up (the simulator's tenant
included, which shares this process only because of the benchmark) out of the cyclic
garbage collector's reach: without it a full collection over that heap stalls the loop for
50-100 ms now and then (`--no-gc-freeze` shows it).

Latency is measured from the moment the POST reaches the web app (an ASGI wrapper stamps
it) to the moment the hub calls the API connection's `set_presence` for that person. It
includes checking the client state and the validation token, queueing, decryption, the
policy and the hub's worker; it excludes the network and Graph's own delay (typically
seconds: graph.md 4.5). `decrypted_*` is the part until the readings reached the hub,
`answer_*` the time until the webhook answered 202.

Prints one JSON line: {"bench": "notify_latency", "people", "rate_per_s", "gc_freeze",
"per_post", "limit", "unwrap_per_s", "decrypt_processes", "ceiling_per_s", "load"
(rate / ceiling), "verdict", "notifications", "measured" (fewer when two changes of a
person went out as one write), "sent_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms",
"decrypted_p50_ms", "decrypted_p99_ms", "answer_p50_ms", "answer_p99_ms", "peak_rss_mb"}.
Run: .venv/bin/python bench/bench_notify_latency.py [--people 1000] [--rate 1000] [--seconds 5]
     [--batch 1] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import math
import os
import pstats
import resource
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
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
                    now = time.perf_counter()
                    for key in value.decode().split(","):
                        self.received[key] = now
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


def bodies_for(sim: Simulator, users: list[User], count: int, batch: int = 1
               ) -> list[tuple[str, bytes]]:
    """Bodies of `batch` notifications (`count` in all), round robin over the people, each a
    change; with the people they are for, comma-separated."""
    now = sim.clock.now()
    subscription_of = {}
    for subscription in sim.subscriptions.subscriptions.values():
        if subscription.kind is Kind.PRESENCE and subscription.live(now):
            for user_id in subscription.target.user_ids or ():
                subscription_of[user_id] = subscription
    token = sim.subscriptions.tokens.token(APP, TENANT, now)
    made = []
    items: list[tuple[str, dict[str, Any]]] = []
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
        items.append((user.mail_nickname or "", change_item(subscription_of[user.id], change)))
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        body = json.dumps({"value": [item for _, item in part],
                           "validationTokens": [token]}).encode()
        made.append((",".join(key for key, _ in part), body))
    return made


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


async def post_asgi(app: ASGIApp, path: str, body: bytes, key: str) -> int:
    """One POST straight into the ASGI app (no HTTP client on this loop); its status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 443),
             "headers": [(b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode()),
                         (b"x-bench-person", key.encode())]}
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status


async def send_all(app: ASGIApp, path: str, bodies: list[tuple[str, bytes]],
                   rate: float, batch: int = 1) -> tuple[float, list[float]]:
    """POST the bodies, `batch` notifications each, at `rate` notifications per second; the
    notification rate reached and the answer times."""
    answers: list[float] = []

    async def post(key: str, body: bytes) -> None:
        started = time.perf_counter()
        status = await post_asgi(app, path, body, key)
        answers.append(time.perf_counter() - started)
        if status != 202:
            raise RuntimeError(f"webhook answered {status}")

    tasks: list[Awaitable[None]] = []
    start = time.perf_counter()
    for index, (key, body) in enumerate(bodies):
        delay = start + index * batch / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(post(key, body)))
    sent = len(bodies) * batch / (time.perf_counter() - start)
    await asyncio.gather(*tasks)
    return sent, answers


def unwrap_rate(seconds: float = 1.0) -> float:
    """RSA-2048 OAEP(SHA-1) unwraps per second on one core, right now."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    wrapped = key.public_key().encrypt(os.urandom(32), oaep)
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(20):
            key.decrypt(wrapped, oaep)
        done += 20
    return done / elapsed


async def main(people: int, rate: float, seconds: float, *, freeze: bool = True,
               batch: int = 1, profile: bool = False) -> dict[str, Any]:
    """Start both sides, then measure."""
    unwrap = unwrap_rate()
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
                warm_up, *bodies = bodies_for(sim, users, count + batch, batch)
                app = Stamped(service.web_app())
                # The first one alone: m365pbx fetches Entra's signing keys once.
                await send_all(app, settings.webhook_path, [warm_up], rate)
                await service.hub.settled()
                app.received.clear()
                if freeze:
                    gc.freeze()
                latencies: list[float] = []
                timed(pbx, app.received, latencies)
                handed: list[float] = []
                nickname = {u.id: u.mail_nickname or "" for u in users}
                original = service.receiver.on_presence

                def on_presence(readings: list[Any]) -> None:
                    now = time.perf_counter()
                    for reading in readings:
                        stamp = app.received.get(nickname.get(reading.user_id, ""))
                        if stamp is not None:
                            handed.append(now - stamp)
                    original(readings)

                service.receiver.on_presence = on_presence
                profiler = cProfile.Profile() if profile else None  # the loop's thread
                if profiler is not None:
                    profiler.enable()
                sent, answers = await send_all(app, settings.webhook_path, bodies, rate, batch)
                # A person's two notifications may meet in the hub and go out as one write
                # (the newer state); the older one's stamp is then replaced, not measured.
                await wait_for(lambda: not app.received, 60, "every PBX call")
                if profiler is not None:
                    profiler.disable()
                    stats = pstats.Stats(profiler, stream=sys.stderr)
                    stats.sort_stats("cumulative").print_stats(45)
            finally:
                service.stop()
                await running
    ms = [value * 1000 for value in latencies]
    answer_ms = [value * 1000 for value in answers]
    processes = service.receiver.decrypt_processes
    ceiling = unwrap * processes
    return {
        "bench": "notify_latency", "people": people, "rate_per_s": rate, "gc_freeze": freeze,
        "per_post": batch, "limit": "RSA-2048 unwraps/s on one core x decryption processes",
        "unwrap_per_s": round(unwrap, 1), "decrypt_processes": processes,
        "ceiling_per_s": round(ceiling, 1), "load": round(rate / ceiling, 3),
        "verdict": ("within this machine's ceiling" if rate <= ceiling else
                    "above this machine's ceiling: the backlog, and latency, grow"),
        "notifications": count, "measured": len(ms), "sent_per_s": round(sent, 1),
        "p50_ms": round(statistics.median(ms), 3), "p90_ms": round(percentile(ms, 0.9), 3),
        "p99_ms": round(percentile(ms, 0.99), 3), "max_ms": round(max(ms), 3),
        "decrypted_p50_ms": round(statistics.median(handed) * 1000, 3),
        "decrypted_p99_ms": round(percentile(handed, 0.99) * 1000, 3),
        "answer_p50_ms": round(statistics.median(answer_ms), 3),
        "answer_p99_ms": round(percentile(answer_ms, 0.99), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=1,
                        help="notifications per POST (Graph batches up to 100)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the event loop's thread while sending (to stderr)")
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="leave the start-up objects to the cyclic garbage collector")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(args.people, args.rate, args.seconds,
                                      freeze=not args.no_gc_freeze, batch=args.batch,
                                      profile=args.profile))))
