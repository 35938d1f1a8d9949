"""`m365pbx serve` with `logging.format: json`: every line on stderr is one JSON event, from
m365pbx and from uvicorn, Alembic and MSAL alike, and no secret is among them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port
from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID

M365PBX = str(Path(sys.executable).with_name("m365pbx"))
WALL_LIMIT = 90.0  # seconds; a start-up takes a few


async def test_serve_writes_json_events_from_every_logger_without_secrets(
    sim_server: RunningServer, sim: Simulator, tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "m365pbx.yaml"
    config.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "listen": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "DEBUG", "format": "json"},
        "microsoft": {"login_url": sim_server.url, "graph_url": sim_server.url,
                      "ca_file": str(sim_server.ca_file)},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": APP_SECRET,
                                      "permissions": ["presence.read", "users.read"]}]}],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }))
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

    try:
        async with asyncio.timeout(WALL_LIMIT):
            await until("directory sync of contoso")
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
    assert "eyJ" not in text  # no token, not even at DEBUG
