"""The `m365sim` command: `serve` in a real process, control commands against a server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from m365sim.cli import app, describe_tenants
from m365sim.entra import entra_of
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from m365sim.tls import ensure_certificates
from tests.sim.conftest import APP_ID, APP_SECRET, CONTOSO, PASSWORD, TENANT_ID

SCENARIO = """\
tenants:
  - name: Contoso
    id: 7b1f0e8e-1111-4222-8333-944455556666
    domains: [contoso.com]
    apps:
      - app_id: 0c8f1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4
        name: m365pbx
        secrets: [{value: "never~printed~secret"}]
        application: [User.Read.All]
    users:
      - {upn: anna@contoso.com, password: "correct horse"}
"""


async def invoke(server: RunningServer, *args: str) -> Result:
    """Run a CLI command in a thread (it calls the server, which runs in this loop)."""
    env = {"M365SIM_URL": server.url, "M365SIM_CA_FILE": str(server.ca_file)}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def output_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_serve_prints_where_to_connect_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    env = {k: v for k, v in os.environ.items() if k not in ("M365SIM_URL", "M365SIM_CA_FILE")}
    process = subprocess.Popen(
        [sys.executable, "-m", "m365sim.cli", "serve", "--port", "0", "--scenario",
         str(scenario), "--cert-dir", str(tmp_path / "tls")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(5)]
        url = lines[0].split()[-1]
        assert url.startswith("https://127.0.0.1:")
        ca_file = tmp_path / "tls" / "ca.pem"
        assert str(ca_file) in lines[1]
        assert lines[2].startswith(f"export M365SIM_URL={url} M365SIM_CA_FILE={ca_file}")
        assert "7b1f0e8e-1111-4222-8333-944455556666" in lines[3]
        assert "0c8f1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4" in lines[4]
        assert "never~printed~secret" not in "".join(lines)
        response = httpx.get(url + "/contoso.com/v2.0/.well-known/openid-configuration",
                             verify=ssl.create_default_context(cafile=str(ca_file)))
        assert response.json()["token_endpoint"].startswith(url)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert process.stderr is not None
        assert "m365sim stopped." in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_refuses_a_broken_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "broken.yaml"
    scenario.write_text("tenants: [{name: x}]\n")
    result = CliRunner().invoke(app, ["serve", "--scenario", str(scenario), "--port", "0"])
    assert result.exit_code == 2
    assert "domains" in result.output


def test_serve_refuses_a_bad_latency() -> None:
    result = CliRunner().invoke(app, ["serve", "--latency-ms", "fast", "--port", "0"])
    assert result.exit_code == 2
    assert "--latency-ms" in result.output


async def test_health(sim_server: RunningServer) -> None:
    assert output_json(await invoke(sim_server, "health"))["status"] == "ok"


async def test_wrong_ca_is_explained(sim_server: RunningServer, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    other.write_bytes(ensure_certificates(tmp_path / "elsewhere").ca_file.read_bytes())
    result = await invoke(sim_server, "health", "--ca-file", str(other))
    assert result.exit_code == 1
    assert "pass --ca-file" in result.output
    missing = await invoke(sim_server, "health", "--ca-file", str(tmp_path / "nope.pem"))
    assert missing.exit_code == 2


async def test_devicecode_approve_lets_the_client_redeem(
    sim_server: RunningServer, sim: Simulator,
) -> None:
    entra_of(sim).settings.device_code_interval_s = 0
    context = ssl.create_default_context(cafile=str(sim_server.ca_file))
    async with httpx.AsyncClient(base_url=sim_server.url, verify=context) as http:
        flow = (await http.post(f"/{TENANT_ID}/oauth2/v2.0/devicecode",
                                data={"client_id": APP_ID, "scope": "User.Read.All"})).json()
        result = await invoke(sim_server, "devicecode", "approve", "--code",
                              flow["user_code"], "--user", "anna@contoso.com")
        assert output_json(result)["state"] == "approved"
        redeemed = await http.post(f"/{TENANT_ID}/oauth2/v2.0/token", data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": APP_ID, "device_code": flow["device_code"]})
        assert redeemed.status_code == 200, redeemed.text


async def test_devicecode_deny_and_unknown_code(sim_server: RunningServer) -> None:
    context = ssl.create_default_context(cafile=str(sim_server.ca_file))
    async with httpx.AsyncClient(base_url=sim_server.url, verify=context) as http:
        flow = (await http.post(f"/{TENANT_ID}/oauth2/v2.0/devicecode",
                                data={"client_id": APP_ID, "scope": "User.Read.All"})).json()
    denied = await invoke(sim_server, "devicecode", "deny", "--code", flow["user_code"])
    assert output_json(denied)["state"] == "declined"
    unknown = await invoke(sim_server, "devicecode", "deny", "--code", "NOPE")
    assert unknown.exit_code == 1
    assert "404 ResourceNotFound" in unknown.output


async def test_revoke_ends_refresh_tokens(sim_server: RunningServer) -> None:
    context = ssl.create_default_context(cafile=str(sim_server.ca_file))
    async with httpx.AsyncClient(base_url=sim_server.url, verify=context) as http:
        signed_in = await http.post(f"/{TENANT_ID}/oauth2/v2.0/token", data={
            "grant_type": "password", "client_id": APP_ID, "username": "anna@contoso.com",
            "password": PASSWORD, "scope": "User.Read.All offline_access"})
        refresh_token = signed_in.json()["refresh_token"]
        result = await invoke(sim_server, "revoke", "-t", "contoso.com", "-u",
                              "anna@contoso.com")
        assert output_json(result)["revoked_refresh_tokens"] == 1
        refreshed = await http.post(f"/{TENANT_ID}/oauth2/v2.0/token", data={
            "grant_type": "refresh_token", "client_id": APP_ID,
            "refresh_token": refresh_token})
        assert refreshed.json()["error_codes"] == [50173]


async def test_teams_commands_drive_presence(sim_server: RunningServer) -> None:
    user = ("-t", "contoso.com", "-u", "anna@contoso.com")
    busy = output_json(await invoke(sim_server, "teams", "set", *user, "--availability",
                                    "Busy", "--activity", "InACall"))
    assert (busy["aggregate"]["availability"], busy["aggregate"]["activity"]) == (
        "Busy", "InACall")
    prefer = output_json(await invoke(sim_server, "teams", "prefer", *user, "--availability",
                                      "DoNotDisturb", "--activity", "DoNotDisturb",
                                      "--expiration", "PT1H"))
    assert prefer["aggregate"]["availability"] == "DoNotDisturb"
    cleared = output_json(await invoke(sim_server, "teams", "clear", *user))
    assert cleared["preferred"] is None
    status = output_json(await invoke(sim_server, "teams", "status", *user, "--message",
                                      "On the phone"))
    assert status["status_message"]["content"] == "On the phone"
    offline = output_json(await invoke(sim_server, "teams", "offline", *user))
    assert offline["aggregate"]["availability"] == "Offline"
    shown = output_json(await invoke(sim_server, "show", "sessions", *user))
    assert shown["user_principal_name"] == "anna@contoso.com"
    refused = await invoke(sim_server, "teams", "set", *user, "--availability", "Happy",
                           "--activity", "Dancing")
    assert refused.exit_code == 1


async def test_meeting_create_and_cancel(sim_server: RunningServer) -> None:
    user = ("-t", "contoso.com", "-u", "anna@contoso.com")
    created = output_json(await invoke(sim_server, "meeting", "create", *user, "--subject",
                                       "Standup", "--start-in", "5m", "--duration", "15m"))
    assert created["subject"] == "Standup"
    cancelled = output_json(await invoke(sim_server, "meeting", "cancel", *user, "--id",
                                         created["id"]))
    assert cancelled["id"] == created["id"]
    both = await invoke(sim_server, "meeting", "create", *user, "--start", "2026-01-05T10:00Z",
                        "--start-in", "5m")
    assert both.exit_code == 2


async def test_faults_set_list_clear(sim_server: RunningServer) -> None:
    added = output_json(await invoke(sim_server, "faults", "set", "--status", "503",
                                     "--count", "1", "--retry-after", "2"))
    assert added["status"] == 503
    listed = output_json(await invoke(sim_server, "faults", "list"))
    assert [rule["id"] for rule in listed["faults"]] == [added["id"]]
    assert (await invoke(sim_server, "faults", "clear")).exit_code == 0
    assert output_json(await invoke(sim_server, "faults", "list"))["faults"] == []


async def test_generate_clock_load_and_logs(sim_server: RunningServer, sim: Simulator,
                                            tmp_path: Path) -> None:
    generated = output_json(await invoke(sim_server, "generate", "-t", "contoso.com",
                                         "--users", "200", "--seed", "7"))
    assert generated["generated"] == 200
    before = sim.clock.now()
    output_json(await invoke(sim_server, "clock", "advance", "90"))
    assert (sim.clock.now() - before).total_seconds() == 90
    scenario = tmp_path / "more.yaml"
    scenario.write_text(SCENARIO)
    loaded = output_json(await invoke(sim_server, "load", str(scenario)))
    assert loaded["tenants"][0]["name"] == "Contoso"
    assert "value" in output_json(await invoke(sim_server, "show", "subscriptions"))
    assert "value" in output_json(await invoke(sim_server, "show", "deliveries", "--limit",
                                               "5"))


@pytest.mark.parametrize("command", [["health"], ["show", "subscriptions"]])
def test_unreachable_simulator_is_a_clear_error(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the simulator" in result.output


def test_secret_is_not_needed_to_show_the_app(tmp_path: Path) -> None:
    sim = Simulator()
    load_scenario(sim, CONTOSO)
    lines = describe_tenants(sim, tmp_path / "s.yaml")
    assert any(APP_ID in line and "1 secret(s)" in line for line in lines)
    assert not any(APP_SECRET in line for line in lines)
