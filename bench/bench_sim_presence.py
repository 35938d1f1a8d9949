"""How fast the simulator answers getPresencesByUserId with 650 ids, and loads presence.

Prints one JSON line:
{"bench": "sim_presence", "ids": 650, "service_p50_ms": ..., "service_p99_ms": ...,
 "asgi_p50_ms": ..., "asgi_p99_ms": ..., "load_user_us": ..., "changes_per_s": ...}
- service_*: the pure service call (PresenceService.read_many) for 650 ids;
- asgi_*: the whole request in-process through the ASGI app (auth, JSON in and out);
- load_user_us: PresenceService.load_user per user while loading 50,000 users;
- changes_per_s: Teams client changes per second that each publish a ResourceChange.
Run: .venv/bin/python bench/bench_sim_presence.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from datetime import timedelta

import httpx

from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.events import ResourceChange
from m365sim.model import AppRegistration, Tenant, User
from m365sim.presence.states import SET_PRESENCE_STATES
from m365sim.presence.timefmt import US_PER_MINUTE
from m365sim.scenario import teams_plan
from m365sim.simulator import SimSettings, Simulator

IDS = 650
USERS = 50_000
SERVICE_ROUNDS = 1_000
ASGI_ROUNDS = 400
APP_ID = str(uuid.UUID(int=1))


def build() -> tuple[Simulator, VirtualClock, Tenant, list[str], float]:
    """A tenant of USERS Teams users; returns the µs load_user took per user."""
    clock = VirtualClock()
    sim = Simulator(clock, SimSettings(base_url="https://sim.bench"))
    tenant = Tenant(id=str(uuid.UUID(int=2)), display_name="Bench", domains=["bench.test"])
    tenant.apps[APP_ID] = AppRegistration(app_id=APP_ID, display_name="bench",
                                          application_roles={"Presence.ReadWrite.All"})
    sim.directory.add_tenant(tenant)
    users = []
    for index in range(USERS):
        users.append(tenant.add_user(User(
            id=str(uuid.UUID(int=10_000 + index)), user_principal_name=f"u{index}@bench.test",
            display_name=f"User {index}", assigned_plans=[teams_plan()])))
    started = time.perf_counter()
    for user in users:
        sim.presence.load_user(tenant, user, "signed-in")
    per_user_us = (time.perf_counter() - started) / USERS * 1e6
    # A realistic mix: a third with an app session, some with a status message.
    states = sorted(SET_PRESENCE_STATES)
    for index, user in enumerate(users[:IDS]):
        if index % 3 == 0:
            sim.presence.set_presence(tenant.id, user.id, APP_ID, states[index % len(states)],
                                      60 * US_PER_MINUTE)
        if index % 7 == 0:
            sim.presence.set_status_message(tenant.id, user.id, f"Note {index}", None, "bench")
    return sim, clock, tenant, [user.id for user in users[:IDS]], per_user_us


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples` in milliseconds."""
    ordered = sorted(samples)
    return (round(statistics.median(ordered) * 1e3, 3),
            round(ordered[int(len(ordered) * 0.99) - 1] * 1e3, 3))


def bench_service(sim: Simulator, tenant: Tenant, ids: list[str]) -> list[float]:
    """Time the pure service call."""
    timings = []
    for _ in range(SERVICE_ROUNDS):
        started = time.perf_counter()
        sim.presence.read_many(tenant, ids)
        timings.append(time.perf_counter() - started)
    return timings


async def bench_asgi(sim: Simulator, clock: VirtualClock, tenant: Tenant,
                     ids: list[str]) -> list[float]:
    """Time whole requests through the ASGI app."""
    token = sim.issuer.access_token(tenant_id=tenant.id, app_id=APP_ID, now=clock.now(),
                                    lifetime=timedelta(hours=1), roles=["Presence.Read.All"])
    headers = {"Authorization": f"Bearer {token}"}
    body = json.dumps({"ids": ids}).encode()
    transport = httpx.ASGITransport(app=create_app(sim))
    timings = []
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.bench") as client:
        for round_ in range(ASGI_ROUNDS):
            if round_ % 100 == 0:
                # Stay under Graph's 1,500 requests / 30 s presence limit (graph.md 5).
                clock.set(clock.now() + timedelta(seconds=31))
            started = time.perf_counter()
            response = await client.post("/v1.0/communications/getPresencesByUserId",
                                         content=body, headers={
                                             **headers, "Content-Type": "application/json"})
            timings.append(time.perf_counter() - started)
            if response.status_code != 200 or len(response.json()["value"]) != len(ids):
                raise SystemExit(f"unexpected answer: {response.status_code} {response.text}")
    return timings


def bench_changes(sim: Simulator, tenant: Tenant) -> float:
    """Teams client changes per second, each one a published ResourceChange."""
    # Users without app sessions or messages, so that every change is visible.
    ids = list(tenant.users)[IDS:2 * IDS]
    published: list[ResourceChange] = []
    sim.bus.listen(published.append)
    flip = [("Busy", "InACall"), ("Available", "Available")]
    count = 20_000
    started = time.perf_counter()
    for index in range(count):
        sim.presence.set_client_state(tenant.id, ids[index % len(ids)], flip[index // len(ids) % 2])
    elapsed = time.perf_counter() - started
    if len(published) != count:
        raise SystemExit(f"{len(published)} changes published, {count} expected")
    return count / elapsed


def main() -> None:
    """Run the benchmark and print its JSON line."""
    sim, clock, tenant, ids, load_user_us = build()
    service_p50, service_p99 = percentiles(bench_service(sim, tenant, ids))
    asgi_p50, asgi_p99 = percentiles(asyncio.run(bench_asgi(sim, clock, tenant, ids)))
    changes_per_s = bench_changes(sim, tenant)
    print(json.dumps({
        "bench": "sim_presence", "ids": IDS,
        "service_p50_ms": service_p50, "service_p99_ms": service_p99,
        "asgi_p50_ms": asgi_p50, "asgi_p99_ms": asgi_p99,
        "load_user_us": round(load_user_us, 2), "users": USERS,
        "changes_per_s": round(changes_per_s),
    }))


if __name__ == "__main__":
    main()
