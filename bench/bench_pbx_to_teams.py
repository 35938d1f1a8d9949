"""PBX → Teams: line-state event → setPresence sent, Graph requests per call, per hour.

The simulator (TLS on 127.0.0.1) plays Entra ID and Graph; m365pbx runs in the same
process in polling mode with the built-in API connection as the PBX, and signs in with
the real MSAL. Requests are counted where m365pbx's HTTP client sends them (a `$batch` is
one request carrying several writes).

1. `latency`: on the wall clock, calls start one after another (`--interval` apart, not
   throttled) on `--people` phones; each sample is the time from `ApiConnection.submit`
   of the line-state event to the moment m365pbx's HTTP client sends the setPresence for
   that person (or the `$batch` carrying it). The calls end again (cleared 1 s later,
   the hold-down), and `requests_per_call` counts the Graph requests each call cost.
2. `note_latency`: with `push_pbx_note_to_teams`, people set "away" with a note on their
   phones one after another; each sample is the time from the event to the setStatusMessage
   leaving m365pbx (after the direct presence read that precedes every status write);
   `requests_per_note` counts every Graph request the change cost (read, preferred
   presence, status message).
3. `per_hour`: on a virtual clock, `--calls` people are on the phone for two hours (their
   calls started spread over the first 14 minutes, as calls do); the second hour's
   presence writes and HTTP requests are counted (15-minute sessions refreshed a minute
   before they lapse).

Prints one JSON line per result:
{"bench": "pbx_to_teams_latency", "calls", "interval_ms", "p50_ms", "p90_ms", "p99_ms",
 "max_ms", "writes_per_call", "requests_per_call"}
{"bench": "pbx_note_to_teams_latency", "notes", "interval_ms", "p50_ms", "p99_ms", "max_ms",
 "requests_per_note"}
{"bench": "pbx_to_teams_per_hour", "concurrent_calls", "still_in_a_call",
 "writes_per_hour", "requests_per_hour", "writes_per_call_hour"}
Run: .venv/bin/python bench/bench_pbx_to_teams.py [--people 200] [--rounds 3]
     [--interval 0.01] [--calls 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import math
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from m365pbx.app import Service, ServiceOptions
from m365pbx.clock import Clock, SystemClock
from m365pbx.config import load_config
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import LineStateEvent, PbxPresenceEvent, PbxUser
from m365pbx.store import load_secret_box
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.model import User
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer, run_server
from m365sim.simulator import SimSettings, Simulator

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "bench~secret~value"
WRITES = ("/presence/setPresence", "/presence/clearPresence", "/presence/setStatusMessage",
          "/presence/setUserPreferredPresence", "/presence/clearUserPreferredPresence")


def make_sim(people: int, clock: VirtualClock | None) -> tuple[Simulator, list[User]]:
    """A simulator with the m365pbx app and `people` licensed users."""
    sim = Simulator(clock, SimSettings(notification_latency_s=(0.0, 0.0)))
    load_scenario(sim, {"tenants": [{
        "id": TENANT, "name": "Contoso", "domains": ["contoso.com"],
        "apps": [{"app_id": APP, "name": "m365pbx", "secrets": [{"value": SECRET}],
                  "application": ["User.Read.All", "Presence.ReadWrite.All"]}],
    }]})
    tenant = sim.directory.find_tenant(TENANT)
    assert tenant is not None
    users = generate_users(sim, tenant, users=people, seed=14, teams_share=1.0,
                           disabled_share=0.0)
    return sim, users


@dataclass
class Sent:
    """Every Graph request m365pbx's HTTP client sent: when, and which presence writes."""

    clock: Clock
    requests: list[tuple[float, float, list[str]]] = field(default_factory=list)

    def wrap(self, http: httpx.AsyncClient) -> None:
        """Record requests as they leave (before the network)."""
        original = http.request

        async def request(method: str, url: Any, **kwargs: Any) -> httpx.Response:
            path = httpx.URL(str(url)).path
            writes = [path] if path.endswith(WRITES) else []
            body = kwargs.get("json")
            if path.endswith("/$batch") and isinstance(body, dict):
                writes = [str(r["url"]) for r in body.get("requests", [])]
            self.requests.append((time.perf_counter(), self.clock.now().timestamp(), writes))
            return await original(method, url, **kwargs)

        http.request = request  # type: ignore[method-assign]

    def reached(self, since: int, action: str, wanted: int) -> bool:
        """Whether `wanted` `action` writes were sent from request number `since` on."""
        return sum(1 for _, _, writes in self.requests[since:] for path in writes
                   if path.endswith(action)) >= wanted

    def writes_between(self, start: float, end: float) -> tuple[int, int]:
        """(presence writes, HTTP requests carrying them) between two clock times."""
        chosen = [w for _, at, w in self.requests if start <= at < end and w]
        return sum(len(w) for w in chosen), len(chosen)


@contextlib.asynccontextmanager
async def service_for(server: RunningServer, tmp: Path, users: list[User], clock: Clock,
                      **switches: Any) -> AsyncIterator[tuple[Service, ApiConnection, Sent]]:
    """m365pbx running against the simulator, people matched, requests recorded."""
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'state.db'}"},
        "secrets": {"key_file": str(tmp / "secret.key")},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "listen": {"host": "127.0.0.1", "port": 0},
        "teams_to_pbx": {"min_poll_interval": "5m"},
        "tenants": [{"name": "contoso", "tenant_id": TENANT, "credentials": [{
            "name": "graph", "client_id": APP, "client_secret": SECRET,
            "permissions": ["presence.read", "presence.write", "users.read"]}]}],
        "pbx_connections": [{"name": "pbx", "kind": "api", "tenant": "contoso",
                             "matching": {"rules": ["h323=mailNickname"]}, **switches}],
    }
    (tmp / "m365pbx.yaml").write_text(yaml.safe_dump(data))
    settings = load_config(tmp / "m365pbx.yaml", environ={})
    box = load_secret_box(key_file=settings.secrets.key_file, environ={})
    service = Service(settings, box, ServiceOptions(clock=clock, serve_http=False))
    sent = Sent(clock)
    sent.wrap(service.http)
    task = asyncio.create_task(service.run())
    try:
        await until(service.started.is_set, clock, "the service start")
        pbx = service.connections["pbx"]
        assert isinstance(pbx, ApiConnection)
        pbx.replace_users([PbxUser(u.mail_nickname or "") for u in users])
        await until(lambda: len(service.hub.people()) == len(users), clock, "matching")
        yield service, pbx, sent
    finally:
        service.stop()
        await task


async def until(check: Callable[[], bool], clock: Clock, what: str,
                limit: float = 120.0) -> None:
    """Wait (moving a virtual clock on) until `check()` holds, at most `limit` wall seconds."""
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what} did not happen within {limit} s")
        if isinstance(clock, VirtualClock):
            await clock.advance(0.5)
        await asyncio.sleep(0.01)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the sorted values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def line(pbx: ApiConnection, user: User, state: LineState, sequence: int,
         at: datetime) -> None:
    """The PBX reports one line state."""
    pbx.submit([LineStateEvent(user.mail_nickname or "", state, at, sequence)])


async def latency(people: int, rounds: int, interval: float) -> dict[str, Any]:
    """Line-state event → setPresence sent, on the wall clock; requests per short call."""
    sim, users = make_sim(people, None)
    clock = SystemClock()
    by_id = {u.id: u for u in users}
    samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-p2t-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server, \
                service_for(server, tmp, users, clock) as (_service, pbx, sent):
            start_at = clock.now().timestamp()
            for round_number in range(rounds):
                submitted: dict[str, float] = {}
                seen = len(sent.requests)
                for user in users:
                    submitted[user.id] = time.perf_counter()
                    line(pbx, user, LineState.ON_THE_PHONE, 2 * round_number + 1, clock.now())
                    await asyncio.sleep(interval)
                await until(functools.partial(sent.reached, seen, "setPresence", people),
                            clock, "every setPresence")
                for stamp, _, carried in sent.requests[seen:]:
                    for path in carried:
                        user_id = path.split("/users/")[1].split("/")[0]
                        if path.endswith("setPresence") and user_id in by_id:
                            samples.append(stamp - submitted.pop(user_id))
                for user in users:
                    line(pbx, user, LineState.IDLE, 2 * round_number + 2, clock.now())
                await until(functools.partial(sent.reached, seen, "clearPresence", people),
                            clock, "every clearPresence")
            writes, requests = sent.writes_between(start_at, clock.now().timestamp() + 1)
    ms = [value * 1000 for value in samples]
    return {"bench": "pbx_to_teams_latency", "calls": len(ms), "interval_ms": interval * 1000,
            "p50_ms": round(statistics.median(ms), 3), "p90_ms": round(percentile(ms, 0.9), 3),
            "p99_ms": round(percentile(ms, 0.99), 3), "max_ms": round(max(ms), 3),
            "writes_per_call": round(writes / (people * rounds), 3),
            "requests_per_call": round(requests / (people * rounds), 3)}


async def note_latency(people: int, interval: float) -> dict[str, Any]:
    """PBX presence with a note → setStatusMessage sent (after the read that must precede it)."""
    sim, users = make_sim(people, None)
    clock = SystemClock()
    samples: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-p2t-note-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server, \
                service_for(server, tmp, users, clock, push_pbx_note_to_teams=True) as (
                    _service, pbx, sent):
            seen = len(sent.requests)
            submitted: dict[str, float] = {}
            for number, user in enumerate(users):
                submitted[user.id] = time.perf_counter()
                pbx.submit([PbxPresenceEvent(user.mail_nickname or "", PbxPresence.AWAY,
                                             clock.now(), f"At lunch until {number % 12 + 1}",
                                             1)])
                await asyncio.sleep(interval)
            await until(functools.partial(sent.reached, seen, "setStatusMessage", people),
                        clock, "every setStatusMessage")
            for stamp, _, carried in sent.requests[seen:]:
                for path in carried:
                    user_id = path.split("/users/")[1].split("/")[0]
                    if path.endswith("setStatusMessage") and user_id in submitted:
                        samples.append(stamp - submitted.pop(user_id))
            requests = len(sent.requests) - seen
    ms = [value * 1000 for value in samples]
    return {"bench": "pbx_note_to_teams_latency", "notes": len(ms),
            "interval_ms": interval * 1000, "p50_ms": round(statistics.median(ms), 3),
            "p99_ms": round(percentile(ms, 0.99), 3), "max_ms": round(max(ms), 3),
            "requests_per_note": round(requests / people, 3)}


async def per_hour(calls: int) -> dict[str, Any]:
    """Writes and requests in the second hour of `calls` concurrent calls (virtual clock)."""
    clock = VirtualClock()
    sim, users = make_sim(calls, clock)
    rng = random.Random(14)  # a reproducible spread of call starts
    with tempfile.TemporaryDirectory(prefix="bench-p2t-hour-") as directory:
        tmp = Path(directory)
        async with run_server(sim, cert_dir=tmp / "tls") as server, \
                service_for(server, tmp, users, clock) as (service, pbx, sent):
            begin = clock.now().timestamp()
            starts = sorted((rng.uniform(0, 14 * 60), u) for u in users)
            step = 5.0
            elapsed = 0.0
            while elapsed < 2 * 3600:
                while starts and starts[0][0] <= elapsed:
                    _, user = starts.pop(0)
                    line(pbx, user, LineState.ON_THE_PHONE, 1, clock.now())
                await clock.advance(step)
                elapsed += step
                # Writes finish before time moves on: a request takes no virtual time.
                await service.hub.settled()
            await service.hub.settled()
            tenant = sim.directory.find_tenant(TENANT)
            assert tenant is not None
            shown = sim.presence.read_many(tenant, [u.id for u in users])
            in_call = sum(1 for s in shown if s["activity"] == "InACall")
            writes, requests = sent.writes_between(begin + 3600, begin + 7200)
    return {"bench": "pbx_to_teams_per_hour", "concurrent_calls": calls,
            "still_in_a_call": in_call, "writes_per_hour": writes,
            "requests_per_hour": requests,
            "writes_per_call_hour": round(writes / calls, 3)}


async def main(args: argparse.Namespace) -> None:
    """Run the three measurements; one JSON line each."""
    print(json.dumps(await latency(args.people, args.rounds, args.interval)), flush=True)
    print(json.dumps(await note_latency(args.people, args.interval)), flush=True)
    print(json.dumps(await per_hour(args.calls)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--calls", type=int, default=1000)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
