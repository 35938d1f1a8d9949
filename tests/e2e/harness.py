"""Running m365pbx against the simulator: settings, the service in the test's loop, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import yaml

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import Settings, load_config
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.store import load_secret_box
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD, TENANT_ID


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The two ways docs/configuration.md allows to name a tenant: its id, or a verified domain.
TENANT_FORMS = {"guid": TENANT_ID, "domain": "contoso.com"}
# The whole suite runs with either: E2E_TENANT_FORM=domain pytest tests/e2e
DEFAULT_TENANT = TENANT_FORMS[os.environ.get("E2E_TENANT_FORM", "guid")]


def settings_for(server: RunningServer, tmp: Path, *, webhook_port: int | None = None,
                 accounts: list[str] | None = None, tenant_id: str = DEFAULT_TENANT,
                 **extra: Any) -> Settings:
    """m365pbx settings for the Contoso tenant on the simulator, with one API connection."""
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'state.db'}"},
        "secrets": {"key_file": str(tmp / "secret.key")},
        "microsoft": {"login_url": server.url, "graph_url": server.url,
                      "ca_file": str(server.ca_file)},
        "listen": {"host": "127.0.0.1", "port": webhook_port or free_port()},
        "teams_to_pbx": {"min_poll_interval": "10s", "reconcile_interval": "5m"},
        "tenants": [{
            "name": "contoso",
            "tenant_id": tenant_id,
            "credentials": [{"name": "graph", "client_id": APP_ID, "client_secret": APP_SECRET,
                             "permissions": ["presence.read", "presence.write", "users.read"]}],
            "service_accounts": [
                {"upn": upn, "credential": "graph", "sign_in": "password", "password": PASSWORD}
                for upn in (accounts if accounts is not None else ["svc-presence@contoso.com"])
            ],
        }],
        "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
    }
    if webhook_port is not None:
        data["public_url"] = f"http://127.0.0.1:{webhook_port}"
    for key, value in extra.items():
        data[key] = value
    path = tmp / "m365pbx.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: VirtualClock,
                  **options: Any) -> AsyncIterator[Service]:
    """The service running in this loop until the block ends."""
    box = load_secret_box(key_file=settings.secrets.key_file, environ={})
    service = Service(settings, box, ServiceOptions(clock=clock, **options))
    task = asyncio.create_task(service.run())
    try:
        started = asyncio.create_task(service.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        yield service
    finally:
        service.stop()
        try:
            await asyncio.wait_for(task, timeout=15)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def pbx_users(*people: tuple[str, str]) -> list[PbxUser]:
    """PBX users from (key, long name) pairs."""
    return [PbxUser(key, {"cn": name}) for key, name in people]


def switchboard(service: Service) -> ApiConnection:
    """The built-in API connection of the test settings."""
    connection = service.connections["switchboard"]
    assert isinstance(connection, ApiConnection)
    return connection


async def eventually(check: Callable[[], bool], clock: VirtualClock, *, step: float = 1.0,
                     wall_timeout: float = 20.0) -> None:
    """Advance the virtual clock in steps until `check()` holds (bounded in wall time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wall_timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("the expected state was not reached in time")
        await clock.advance(step)
        await asyncio.sleep(0.02)


async def in_teams(server: RunningServer, upn: str, body: dict[str, Any]) -> None:
    """Act as the person in their Teams client (the simulator's control API)."""
    import ssl

    import httpx

    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.post(f"{server.url}/_sim/tenants/contoso.com/users/{upn}/teams",
                                 json=body)
        assert answer.status_code == 200, answer.text
