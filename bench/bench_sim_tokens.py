"""How fast the simulator's token endpoint answers, in-process over ASGI (no sockets).

Client credentials (secret), the password grant and a refresh, each measured separately
on one core; m365pbx test suites ask for many tokens, so this bounds their cost.

Prints one JSON line: {"bench": "sim_tokens", "<grant>_per_second": R, ...}.
Run: .venv/bin/python bench/bench_sim_tokens.py
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.scenario import load_scenario
from m365sim.simulator import SimSettings, Simulator

TENANT = "5b7d1c33-8f0e-4e4a-9a57-0c1d2e3f4a5b"
APP = "6c8e2d44-9a1f-4f5b-8b68-1d2e3f4a5b6c"
SECRET = "bench~secret"
PASSWORD = "bench pass word"
SCENARIO: dict[str, Any] = {"tenants": [{
    "id": TENANT, "name": "Bench", "domains": ["bench.example"],
    "apps": [{"app_id": APP, "name": "bench", "secrets": [{"value": SECRET}],
              "public_client": True, "delegated": ["Presence.Read.All", "offline_access"],
              "application": ["Presence.Read.All"]}],
    "users": [{"upn": "svc@bench.example", "password": PASSWORD}],
}]}


async def rate(http: httpx.AsyncClient, form: dict[str, str], rounds: int) -> float:
    """Token answers per second for `rounds` sequential requests with this form."""
    started = time.perf_counter()
    for _ in range(rounds):
        response = await http.post(f"/{TENANT}/oauth2/v2.0/token", data=form)
        if response.status_code != 200:
            raise SystemExit(f"token request failed: {response.text}")
    return rounds / (time.perf_counter() - started)


async def main(rounds: int = 300) -> dict[str, Any]:
    """Run the three measurements."""
    sim = Simulator(VirtualClock(), SimSettings(base_url="https://bench.test"))
    load_scenario(sim, SCENARIO)
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://bench.test") as http:
        app_form = {"grant_type": "client_credentials", "client_id": APP,
                    "client_secret": SECRET, "scope": "https://graph.microsoft.com/.default"}
        user_form = {"grant_type": "password", "client_id": APP,
                     "username": "svc@bench.example", "password": PASSWORD,
                     "scope": "Presence.Read.All offline_access openid profile",
                     "client_info": "1"}
        first = await http.post(f"/{TENANT}/oauth2/v2.0/token", data=user_form)
        refresh_form = {"grant_type": "refresh_token", "client_id": APP,
                        "refresh_token": first.json()["refresh_token"]}
        return {
            "bench": "sim_tokens",
            "rounds": rounds,
            "client_credentials_per_second": round(await rate(http, app_form, rounds)),
            "password_per_second": round(await rate(http, user_form, rounds)),
            "refresh_token_per_second": round(await rate(http, refresh_form, rounds)),
        }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
