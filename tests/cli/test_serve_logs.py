"""`m365pbx serve` with `logging.format: json`: every line on stderr is one JSON event, from
m365pbx and from uvicorn, Alembic and MSAL alike, and no secret is among them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD, TENANT_ID

M365PBX = str(Path(sys.executable).with_name("m365pbx"))
WALL_LIMIT = 90.0  # seconds; a start-up takes a few
SVC = "svc-presence@contoso.com"


async def test_serve_writes_json_events_from_every_logger_without_secrets(
    sim_server: RunningServer, sim: Simulator, tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    port = free_port()
    users = tmp_path / "users.csv"
    users.write_text("h323,cn\nanna,Anna Schmidt\nben,Ben Weber\n")
    config = tmp_path / "m365pbx.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "logging": {"level": "DEBUG", "format": "json"},
        "microsoft": {"login_url": sim_server.url, "graph_url": sim_server.url,
                      "ca_file": str(sim_server.ca_file)},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": APP_SECRET,
                                      "permissions": ["presence.read", "users.read"]}],
                     "service_accounts": [{"upn": SVC, "credential": "graph",
                                           "sign_in": "password", "password": PASSWORD}]}],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso",
                             "users_file": str(users)}],
    }))
    env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
    process = await asyncio.create_subprocess_exec(
        M365PBX, "serve", "-c", str(config), stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path)
    assert process.stderr is not None
    lines: list[str] = []

    async def until(text: str, times: int = 1) -> None:
        while sum(text in line for line in lines) < times:
            line = await process.stderr.readline()  # type: ignore[union-attr]
            assert line, f"m365pbx ended before logging {text!r}: {lines[-5:]}"
            lines.append(line.decode())

    try:
        async with asyncio.timeout(WALL_LIMIT):
            await until("directory sync of contoso")
            # Two subscriptions: the app's on users, and the presence subscription of the
            # service account, which signed in with its password.
            await until(f"POST {sim_server.url}/v1.0/subscriptions", times=2)
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"NOT HTTP\r\n\r\n")  # uvicorn warns about it
            await writer.drain()
            await until("Invalid HTTP request")
            writer.close()
            process.send_signal(signal.SIGTERM)
            rest = await process.stderr.read()
            lines += rest.decode().splitlines(keepends=True)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            with contextlib.suppress(ProcessLookupError):
                await process.wait()

    events: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    for event in events:
        assert {"event", "level", "logger", "timestamp"} <= set(event), event
    loggers = {event["logger"] for event in events}
    assert "uvicorn.error" in loggers
    assert "alembic.runtime.migration" in loggers
    assert any(name.startswith("msal") for name in loggers), loggers
    assert any(name.startswith("m365pbx.") for name in loggers)
    summary = next(e for e in events if e.get("directory_sync") == "summary")
    assert summary["tenant"] == "contoso" and summary["ok"] is True
    text = "".join(lines)
    assert APP_SECRET not in text
    assert PASSWORD not in text and json.dumps(PASSWORD)[1:-1] not in text
    # No token, not even at DEBUG (MSAL's client_info is base64 JSON too, but not a JWT).
    assert re.search(r"eyJ[\w-]+\.[\w-]+\.", text) is None
