"""`m365pbx check` against the simulator on a loopback port (HTTPS, its own CA).

The simulator's virtual clock is set to the wall clock's time and stands still, so a check
run on the wall clock (the CLI) sees Microsoft's Date within seconds of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from m365pbx.check import CheckContext, Finding, Status, run_checks
from m365pbx.config import Settings, load_config
from m365pbx.sync.teams_to_pbx.receiver import NotificationReceiver
from m365pbx.web.graph_webhook import webhook_router
from m365sim.clock import VirtualClock
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer, listening_socket, run_server
from m365sim.simulator import SimSettings, Simulator

TENANT_ID = "3f1c2b7a-5d0e-4c8b-9a61-2e7d4b9c0a11"
GOOD_APP = "b2c5e8f1-0a3d-4b6e-9c2f-5d8a1e4b7c30"
NO_WRITE_APP = "c3d6f9a2-1b4e-4c7f-8d3a-6e9b2f5c8d41"
NO_CONSENT_APP = "d4e7a0b3-2c5f-4d8a-9e4b-7f0c3a6d9e52"
SECRET = "check-test-secret~value"
PASSWORD = "Sv c-pa55!"

SCENARIO: dict[str, Any] = {"tenants": [{
    "id": TENANT_ID,
    "name": "Contoso",
    "domains": ["contoso.com"],
    "apps": [
        {"app_id": GOOD_APP, "name": "m365pbx", "secrets": [{"value": SECRET}],
         "public_client": True,
         "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
         "application": ["User.Read.All", "Presence.ReadWrite.All"]},
        # Registered without Presence.ReadWrite.All (and without delegated presence).
        {"app_id": NO_WRITE_APP, "name": "m365pbx-read-only", "secrets": [{"value": SECRET}],
         "public_client": True, "delegated": ["User.Read.All", "offline_access"],
         "application": ["User.Read.All", "Presence.Read.All"]},
        # Registered, but nobody granted admin consent for anything.
        {"app_id": NO_CONSENT_APP, "name": "m365pbx-new", "secrets": [{"value": SECRET}],
         "public_client": True},
    ],
    "users": [
        {"upn": "svc@contoso.com", "display_name": "Presence Service", "password": PASSWORD},
        {"upn": "svc-mfa@contoso.com", "display_name": "MFA Service", "password": PASSWORD,
         "mfa": True},
        {"upn": "svc-nolicence@contoso.com", "display_name": "Unlicensed Service",
         "password": PASSWORD, "teams": False},
        {"upn": "anna@contoso.com", "display_name": "Anna Schmidt", "password": PASSWORD},
        {"upn": "ben@contoso.com", "display_name": "Ben Weber", "password": PASSWORD},
    ],
}]}


@pytest.fixture
def check_clock() -> VirtualClock:
    """A virtual clock standing at the wall clock's time."""
    return VirtualClock(datetime.now(UTC))


@pytest.fixture
async def server(check_clock: VirtualClock, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """The simulator with the check scenario on https://127.0.0.1:<port>."""
    sim = Simulator(check_clock, SimSettings(notification_latency_s=(0.0, 0.0)))
    load_scenario(sim, SCENARIO)
    async with run_server(sim, cert_dir=tmp_path / "tls") as running:
        running_sim[running.url] = sim
        yield running
        running_sim.pop(running.url, None)


# The simulator behind each running server (for faults and generated users).
running_sim: dict[str, Simulator] = {}


def sim_of(server: RunningServer) -> Simulator:
    """The simulator `server` serves."""
    return running_sim[server.url]


def write_config(server: RunningServer, tmp: Path, *, app_id: str = GOOD_APP,
                 permissions: tuple[str, ...] = ("presence.read", "presence.write",
                                                  "users.read"),
                 accounts: list[dict[str, Any]] | None = None,
                 **extra: Any) -> Path:
    """A configuration file for Contoso on the simulator, with one API connection."""
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'state.db'}"},
        "secrets": {"key_file": str(tmp / "secret.key")},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "tenants": [{
            "name": "contoso",
            "tenant_id": TENANT_ID,
            "credentials": [{"name": "graph", "client_id": app_id, "client_secret": SECRET,
                             "permissions": list(permissions)}],
            "service_accounts": accounts if accounts is not None else [
                {"upn": "svc@contoso.com", "credential": "graph", "sign_in": "password",
                 "password": PASSWORD}],
        }],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }
    data.update(extra)
    path = tmp / "m365pbx.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def settings_of(path: Path) -> Settings:
    """The settings in `path`, without the environment."""
    return load_config(path, environ={})


async def check(path: Path, clock: VirtualClock, **options: Any) -> list[Finding]:
    """Every finding for the configuration in `path`, on the simulator's clock."""
    return await run_checks(CheckContext(settings_of(path), clock=clock,
                                         timeout=options.pop("timeout", 5.0), **options))


def only(findings: list[Finding], status: Status) -> list[Finding]:
    """The findings with this status."""
    return [f for f in findings if f.status is status]


def about(findings: list[Finding], text: str) -> list[Finding]:
    """The findings whose subject or message contains `text`."""
    return [f for f in findings if text in f.subject or text in f.message]


@contextlib.asynccontextmanager
async def webhook_endpoint(path: str = "/graph/notifications") -> AsyncIterator[str]:
    """m365pbx's own Graph webhook route on http://127.0.0.1:<port> (what public_url names)."""
    receiver = NotificationReceiver(
        VirtualClock(), lambda _id: None, lambda _id: None, _no_keys,
        lambda _readings: None, lambda _sub, _ids: None, _no_lifecycle)
    app = FastAPI()
    app.include_router(webhook_router(receiver, path=path, lifecycle_path=path + "/lifecycle"))
    sock = listening_socket("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    import asyncio

    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


async def _no_keys(_tenant: str, _kids: set[str]) -> dict[str, Any]:
    return {}


async def _no_lifecycle(*_args: Any) -> None:
    return None
