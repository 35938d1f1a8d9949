"""Benchmark: generate a 50,000-user tenant in m365sim, then read it; prints one JSON line.

Usage: .venv/bin/python bench/bench_sim_tenant.py [--users 50000] [--seed 1]

`generate_s` is the time of `generate_users` alone (including each user's presence and
outlook set-up through the other parts' `load_user`); the issue's target is under 10 s.
`first_page_ms` is one `GET /v1.0/users?$top=999` through the ASGI app, `teams_filter_ms`
one page of the documented Teams-licence `$filter`, `full_list_s` every page of `$top=999`
and `delta_sync_s` a full first `/users/delta` round. `peak_rss_mb` is
`resource.getrusage(RUSAGE_SELF).ru_maxrss` of the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from datetime import timedelta
from typing import Any

import httpx

from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.model import TEAMS_PLAN_ID, Tenant
from m365sim.simulator import SimSettings, Simulator

TENANT_ID = "0b3f2e6c-5d1a-4f7e-9c2b-8a4d6e1f3a5b"
APP_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"


def build(users: int, seed: int) -> tuple[Simulator, Tenant, float]:
    sim = Simulator(VirtualClock(), SimSettings(base_url="https://bench.test"))
    from m365sim.scenario import load_scenario

    load_scenario(sim, {"tenants": [{"id": TENANT_ID, "domains": ["bench.example"],
                                     "apps": [{"app_id": APP_ID,
                                               "application": ["User.Read.All"]}]}]})
    tenant = sim.directory.find_tenant(TENANT_ID)
    assert tenant is not None
    started = time.perf_counter()
    generate_users(sim, tenant, users=users, seed=seed)
    return sim, tenant, time.perf_counter() - started


async def read(sim: Simulator) -> dict[str, Any]:
    token = sim.issuer.access_token(tenant_id=TENANT_ID, app_id=APP_ID, now=sim.clock.now(),
                                    lifetime=timedelta(hours=1), roles=["User.Read.All"])
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://bench.test") as http:

        async def timed(url: str) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            response = await http.get(url, headers=headers)
            response.raise_for_status()
            return time.perf_counter() - started, response.json()

        first, _ = await timed("/v1.0/users?$top=999")
        teams, _ = await timed(
            f"/v1.0/users?$top=999&$select=id,displayName,assignedPlans&$filter=assignedPlans/"
            f"any(a:a/servicePlanId eq {TEAMS_PLAN_ID} and a/capabilityStatus eq 'Enabled')")

        async def walk(url: str, link: str) -> tuple[float, int]:
            started, count = time.perf_counter(), 0
            next_url: str | None = url
            while next_url:
                _, body = await timed(next_url)
                count += len(body["value"])
                next_url = body.get(link)
            return time.perf_counter() - started, count

        full, listed = await walk("/v1.0/users?$top=999", "@odata.nextLink")
        delta, synced = await walk("/v1.0/users/delta?$select=id,displayName,mail",
                                   "@odata.nextLink")
    return {"first_page_ms": round(first * 1000, 1), "teams_filter_ms": round(teams * 1000, 1),
            "full_list_s": round(full, 3), "listed": listed, "delta_sync_s": round(delta, 3),
            "delta_users": synced}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sim, tenant, seconds = build(args.users, args.seed)
    reads = asyncio.run(read(sim))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bench": "sim_tenant", "users": len(tenant.users),
                      "generate_s": round(seconds, 3), **reads,
                      "peak_rss_mb": round(peak, 1)}))


if __name__ == "__main__":
    main()
