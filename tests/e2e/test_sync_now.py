""""Sync now": the API route and `m365pbx sync now` start a full directory sync at once in
the running service (issue 18, item 10)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from typer.testing import CliRunner

from m365pbx.app import Service
from m365pbx.cli.app import _register, app
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port, pbx_users, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import requests_to

PBX = (("anna", "Anna Schmidt"), ("ben", "Ben Weber"))


async def cli(*args: str) -> tuple[int, str, str]:
    """Run `m365pbx ARGS` as an admin would, beside the service (in a thread)."""
    _register()
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.stdout, result.stderr


async def full_reads_grow(sim: Simulator, before: int) -> None:
    """Wait (wall time, the virtual clock standing still) for another full read."""
    for _ in range(500):
        if requests_to(sim, "GET", "/v1.0/users") > before:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no full directory read started")


async def settled(service: Service, sim: Simulator, clock: VirtualClock) -> int:
    """Let the start-up syncs finish; the number of full reads so far."""
    switchboard(service).replace_users(pbx_users(*PBX))
    for _ in range(200):
        if len(service.hub.people()) == 2:
            break
        await clock.advance(0.5)
        await asyncio.sleep(0.02)
    assert len(service.hub.people()) == 2
    directory = service.tenants["contoso"].parts.directory
    for _ in range(500):  # a start-up sync asked for while another ran has run too
        if directory.idle:
            break
        await asyncio.sleep(0.02)
    assert directory.idle
    return requests_to(sim, "GET", "/v1.0/users")


async def test_the_route_starts_a_full_sync_at_once_and_checks_the_key(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    config = tmp_path / "m365pbx.yaml"
    code, write_key, err = await cli("api-key", "create", "admin", "--scope", "write",
                                     "--config", str(config))
    assert code == 0, err
    code, read_key, err = await cli("api-key", "create", "wallboard", "--config", str(config))
    assert code == 0, err
    async with running(settings, clock) as service:
        before = await settled(service, sim, clock)
        url = (f"http://{settings.listen.host}:{settings.listen.port}"
               "/api/v1/directory/sync")
        async with httpx.AsyncClient(timeout=60) as http:
            answer = await http.post(url, headers={"Authorization": f"Bearer {write_key.strip()}"})
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"tenants": ["contoso"]}
            await full_reads_grow(sim, before)

            refused = await http.post(url, headers={"Authorization":
                                                    f"Bearer {read_key.strip()}"})
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "insufficient-scope"
            anonymous = await http.post(url)
            assert anonymous.status_code == 401
            unknown = await http.post(url, params={"tenant": "fabrikam"},
                                      headers={"Authorization": f"Bearer {write_key.strip()}"})
            assert unknown.status_code == 404
            assert unknown.json()["error"]["code"] == "unknown-tenant"


async def test_the_cli_starts_a_full_sync_in_the_running_service(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path)
    config = str(tmp_path / "m365pbx.yaml")
    code, key, err = await cli("api-key", "create", "admin", "--scope", "write",
                               "--config", config)
    assert code == 0, err
    code, _out, err = await cli("sync", "now", "--config", config)
    assert code == 2 and "--scope write" in err and "M365PBX_API_KEY" in err
    code, _out, err = await cli("sync", "now", "--config", config, "--api-key", key.strip())
    assert code == 1 and "is 'm365pbx serve' running" in err  # nobody listens yet
    async with running(settings, clock) as service:
        before = await settled(service, sim, clock)
        code, out, err = await cli("sync", "now", "--config", config, "--tenant", "contoso",
                                   "--api-key", key.strip())
        assert code == 0, err
        assert out.strip() == "directory sync started for: contoso"
        await full_reads_grow(sim, before)
        code, _out, err = await cli("sync", "now", "--config", config, "--tenant", "nobody",
                                    "--api-key", key.strip())
        assert code == 1 and "unknown-tenant" in err
