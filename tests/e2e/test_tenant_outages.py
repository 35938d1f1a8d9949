"""A tenant that cannot sign in is a red light, not an exit (issue 18, item 4).

Microsoft unreachable at start-up, a wrong client secret, one of two tenants broken: the
service starts, says what is wrong in words with the fix, keeps the PBX side and the
other tenants working, and comes up by itself when Microsoft is back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365pbx.app import Service
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer, run_server
from m365sim.simulator import Simulator
from m365sim.tls import ensure_certificates
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, shown
from tests.sim.conftest import APP_ID, APP_SECRET

BUSY = {"preferred": {"availability": "Busy", "activity": "Busy"}}
UNKNOWN_TENANT = "0b2ec3a1-6f0e-4c7b-9a53-8d1f2f8e4c11"


def tenant_health(service: Service, name: str = "contoso") -> dict[str, Any]:
    """One tenant's part of the health report."""
    report: dict[str, Any] = service.health()["tenants"][name]
    return report


async def probe(service: Service, path: str) -> httpx.Response:
    """GET one of the service's own routes over HTTP, as an orchestrator does."""
    listen = service.settings.listen
    async with httpx.AsyncClient(base_url=f"http://{listen.host}:{listen.port}",
                                 timeout=60) as http:
        return await http.get(path)


async def test_microsoft_unreachable_at_start_up_then_back(
    sim: Simulator, clock: VirtualClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    cert_dir = tmp_path / "tls"
    files = ensure_certificates(cert_dir, ["127.0.0.1"])
    down = RunningServer(f"https://127.0.0.1:{port}", files.ca_file, port)
    settings = settings_for(down, tmp_path)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))

        def signing_in_failed() -> bool:
            return str(tenant_health(service)["state"]).startswith("signing in failed: ")

        await eventually(signing_in_failed, clock)
        state = tenant_health(service)["state"]
        assert "cannot reach Entra ID" in state and f"127.0.0.1:{port}" in state
        assert tenant_health(service)["since"] is not None
        # The process is alive and ready for the PBX side: no restart during an outage.
        assert (await probe(service, "/livez")).status_code == 200
        ready = await probe(service, "/readyz")
        assert ready.status_code == 200, ready.text
        assert (await probe(service, "/healthz")).status_code == 200
        assert (await probe(service, "/api/v1/people")).status_code == 401  # served, needs a key
        assert "Traceback" not in caplog.text

        # Microsoft comes back on the same address: the tenant comes up by itself.
        async with run_server(sim, port=port, cert_dir=cert_dir):
            await eventually(lambda: tenant_health(service)["state"] == "connected", clock,
                             step=5.0, wall_timeout=60)
            await eventually(lambda: len(service.hub.people()) == 2, clock, step=5.0)
            await in_teams(RunningServer(f"https://127.0.0.1:{port}", files.ca_file, port),
                           "anna@contoso.com", BUSY)
            await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
            health = tenant_health(service)
            assert health["directory"]["error"] is None
            assert health["polling"]["error"] is None


async def test_a_wrong_client_secret_is_explained_and_the_service_stays_up(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng~secret~value~pasted~here"
    settings = settings_for(sim_server, tmp_path, tenants=[{
        "name": "contoso", "tenant_id": "contoso.com",
        "credentials": [{"name": "graph", "client_id": APP_ID, "client_secret": wrong,
                         "permissions": ["presence.read", "presence.write", "users.read"]}],
    }])
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))

        def refused() -> bool:
            return str(tenant_health(service)["state"]).startswith("signing in failed: ")

        await eventually(refused, clock)
        state = tenant_health(service)["state"]
        assert "the client secret is wrong (AADSTS7000215)" in state
        assert "Paste the secret's Value, not its Secret ID" in state
        assert (await probe(service, "/readyz")).status_code == 200
        assert (await probe(service, "/livez")).status_code == 200
        # The report tells the truth without a 503: m365pbx itself is fine.
        health = await probe(service, "/healthz")
        assert health.status_code == 200 and health.json()["ok"] is False
        assert health.json()["tenants"]["contoso"]["state"] == state
    assert wrong not in caplog.text and APP_SECRET not in caplog.text


async def test_one_broken_tenant_leaves_the_other_working(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    contoso = {
        "name": "contoso", "tenant_id": "contoso.com",
        "credentials": [{"name": "graph", "client_id": APP_ID, "client_secret": APP_SECRET,
                         "permissions": ["presence.read", "presence.write", "users.read"]}],
    }
    typo = {
        "name": "fabrikam", "tenant_id": UNKNOWN_TENANT,
        "credentials": [{"name": "fabrikam-graph", "client_id": APP_ID,
                         "client_secret": APP_SECRET,
                         "permissions": ["presence.read", "users.read"]}],
    }
    settings = settings_for(sim_server, tmp_path, tenants=[contoso, typo], pbx_connections=[
        {"name": "switchboard", "kind": "api", "tenant": "contoso"},
        {"name": "fabrikam-pbx", "kind": "api", "tenant": "fabrikam"},
    ])
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        other = service.connections["fabrikam-pbx"]
        assert isinstance(other, ApiConnection)
        other.replace_users(pbx_users(("carl", "Carl Meier")))

        def fabrikam_failed() -> bool:
            return str(tenant_health(service, "fabrikam")["state"]).startswith(
                "signing in failed: ")

        await eventually(fabrikam_failed, clock)
        state = tenant_health(service, "fabrikam")["state"]
        assert "the tenant does not exist (AADSTS90002)" in state
        assert "Check the tenant id or domain in the configuration" in state

        await in_teams(sim_server, "anna@contoso.com", BUSY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
        assert tenant_health(service)["state"] == "connected"
        assert (await probe(service, "/readyz")).status_code == 200
