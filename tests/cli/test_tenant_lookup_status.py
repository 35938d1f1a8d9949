"""A tenant configured by domain whose id cannot be looked up: the status light says why in
words a new admin can act on (issue 18 item 2). Entra unreachable is an error that mends
itself, with the network named as the fix, not "bad credentials" with a hint to check the
tenant_id; a domain Entra does not know is a wrong tenant_id."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import yaml

from m365sim.server import RunningServer
from tests.cli.test_one_node_per_database import serving
from tests.e2e.harness import free_port
from tests.sim.conftest import APP_ID, APP_SECRET

WAIT = 60.0  # seconds; the first lookup happens at once


def domain_config(tmp_path: Path, login_url: str, ca_file: Path, domain: str,
                  port: int) -> Path:
    """A node whose one tenant is configured by `domain`, signing in at `login_url`."""
    config = tmp_path / "m365pbx.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "listen": {"host": "127.0.0.1", "port": port},
        "microsoft": {"login_url": login_url, "graph_url": login_url,
                      "ca_file": str(ca_file)},
        "tenants": [{"name": "contoso", "tenant_id": domain,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": APP_SECRET,
                                      "permissions": ["presence.read", "users.read"]}]}],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }))
    return config


async def tenant_id_part(port: int) -> tuple[dict[str, Any], str]:
    """The part `tenant/contoso/tenant_id` of the node on `port`, once it has an error, and
    the tenant's state line in `/healthz`."""
    async with httpx.AsyncClient() as client, asyncio.timeout(WAIT):
        while True:
            health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
            part = next(p for p in health["parts"] if p["part"] == "tenant/contoso/tenant_id")
            if part["error"]:
                return part, health["tenants"]["contoso"]["state"]
            await asyncio.sleep(0.2)


async def test_entra_unreachable_is_an_error_with_the_network_as_the_fix(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        login = f"https://127.0.0.1:{closed.getsockname()[1]}"
        port = free_port()
        config = domain_config(tmp_path, login, sim_server.ca_file, "contoso.com", port)
        async with serving(config):
            part, line = await tenant_id_part(port)
    assert part["state"] == "error", part
    assert line.startswith("signing in failed: cannot look up") and "Check DNS" in line
    assert "cannot reach Entra ID" in part["error"]
    assert "Check DNS, the firewall and the proxy" in part["fix"]
    assert "tenant_id" not in part["fix"]


async def test_a_domain_entra_does_not_know_is_a_wrong_tenant_id(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    port = free_port()
    config = domain_config(tmp_path, sim_server.url, sim_server.ca_file, "not-ours.example",
                           port)
    async with serving(config):
        part, _ = await tenant_id_part(port)
    assert part["state"] == "bad_credentials", part
    assert "not-ours.example" in part["error"]
    assert part["fix"]
