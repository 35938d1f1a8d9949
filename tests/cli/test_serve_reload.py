"""`m365pbx serve` applies its configuration file again on SIGHUP: a client secret fixed
in the file signs the tenant in without a restart; the secret is in no log line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import httpx
import yaml

from m365sim.server import RunningServer
from tests.cli.test_serve_logs import M365PBX, WALL_LIMIT
from tests.e2e.harness import free_port
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID

WRONG = "Wr0ng~secret~value~pasted~here"


def write_config(path: Path, tmp_path: Path, server: RunningServer, port: int,
                 secret: str) -> None:
    """A configuration with one tenant whose app signs in with `secret`."""
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "listen": {"host": "127.0.0.1", "port": port},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": secret,
                                      "permissions": ["presence.read", "users.read"]}]}],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }))


async def test_sighup_applies_a_fixed_secret_without_a_restart(
    sim_server: RunningServer, tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "m365pbx.yaml"
    write_config(config, tmp_path, sim_server, port, WRONG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
    process = await asyncio.create_subprocess_exec(
        M365PBX, "serve", "-c", str(config), stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path)
    assert process.stderr is not None
    lines: list[str] = []

    async def until(text: str) -> None:
        while not any(text in line for line in lines):
            line = await process.stderr.readline()  # type: ignore[union-attr]
            assert line, f"m365pbx ended before logging {text!r}: {lines[-5:]}"
            lines.append(line.decode())

    async def sign_in_state() -> str:
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
        return next(p["state"] for p in health["parts"] if p["part"] == "tenant/contoso/sign_in")

    try:
        async with asyncio.timeout(WALL_LIMIT):
            await until("AADSTS7000215")
            assert await sign_in_state() == "bad_credentials"
            write_config(config, tmp_path, sim_server, port, APP_SECRET)
            process.send_signal(signal.SIGHUP)
            await until("SIGHUP applied the configuration file")
            await until("signed in again")
            assert await sign_in_state() == "ok"
            assert process.returncode is None  # the same process: no restart
            process.send_signal(signal.SIGTERM)
            lines += (await process.stderr.read()).decode().splitlines(keepends=True)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()
    text = "".join(lines)
    assert "client_secret" in text  # named as applied...
    assert APP_SECRET not in text and WRONG not in text  # ...never its value
