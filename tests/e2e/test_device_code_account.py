"""An MFA service account signed in once with a device code (`m365pbx signin`) owns the
presence subscription; its renewed refresh token is kept."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from m365pbx.config import Settings, load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.store import Store, load_secret_box
from m365sim.clock import VirtualClock
from m365sim.entra import entra_of
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks, shown
from tests.sim.conftest import TENANT_ID

MFA = "mfa@contoso.com"
CODE = re.compile(r"enter the code (\S+)")


def device_code_settings(server: RunningServer, tmp: Path) -> Settings:
    """Webhook-mode settings whose only service account is the MFA user, by device code."""
    settings_for(server, tmp, webhook_port=free_port())
    path = tmp / "m365pbx.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["tenants"][0]["service_accounts"] = [
        {"upn": MFA, "credential": "graph", "sign_in": "device_code"}]
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


async def stored_refresh_token(settings: Settings) -> str | None:
    """The refresh token m365pbx keeps for the MFA account (decrypted)."""
    store = Store.open(settings.database.url,
                       load_secret_box(key_file=settings.secrets.key_file, environ={}))
    try:
        async with store.transaction() as tx:
            row = await tx.service_accounts.find(MFA)
            return None if row is None else tx.service_accounts.refresh_token(row)
    finally:
        await store.close()


async def approve(server: RunningServer, user_code: str) -> None:
    """The person opens the device-login page, enters the code and signs in (with MFA)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.post(f"{server.url}/_sim/devicecode/approve",
                                 json={"user_code": user_code, "upn": MFA})
        assert answer.status_code == 200, answer.text


async def sign_in(server: RunningServer, clock: VirtualClock, config: Path) -> tuple[str, str]:
    """Run `m365pbx signin` as an admin would; approve the code it prints; its output."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("M365PBX_") and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from m365pbx.cli import main; main()", "signin", MFA,
        "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode()
        found = CODE.search(line)
        assert found, line
        await approve(server, found.group(1))
        finished = asyncio.ensure_future(process.communicate())
        while not finished.done():
            # MSAL polls every `interval` seconds; the simulator measures that on its clock.
            await clock.advance(1)
            await asyncio.wait({finished}, timeout=0.2)
        rest, errors = finished.result()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, errors.decode()
    return line + rest.decode(), errors.decode()


async def test_mfa_account_signed_in_by_device_code_owns_the_subscription(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    entra_of(sim).settings.device_code_interval_s = 1
    settings = device_code_settings(sim_server, tmp_path)
    output, errors = await sign_in(sim_server, clock, tmp_path / "m365pbx.yaml")
    assert "https://microsoft.com/devicelogin" in output
    assert f"signed in as {MFA}" in output
    mfa_user = tenant.users_by_upn[MFA]
    issued = entra_of(sim).refresh_tokens.tokens_of(TENANT_ID, mfa_user)
    assert issued
    assert not any(grant.token in output or grant.token in errors for grant in issued)
    first = await stored_refresh_token(settings)
    assert first is not None and first in {grant.token for grant in issued}
    assert first.encode() not in (tmp_path / "state.db").read_bytes()  # encrypted at rest

    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[MFA]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        now = clock.now()
        held = [s for s in sim.subscriptions.subscriptions.values()
                if s.live(now) and s.target.kind == "presence"]  # not the users one
        assert [s.user_id for s in held] == [mfa_user]
        assert service.health()["tenants"]["contoso"]["subscriptions"][MFA] == {
            "state": "connected", "error": None, "since": owner.since.isoformat()}
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock, step=0.2)
        assert service.receiver.counters["accepted"] >= 1
        # Entra handed out a new refresh token with the first access token: it is kept.
        renewed = first
        for _ in range(200):  # the store is written in the background; bounded wait
            renewed = await stored_refresh_token(settings)
            if renewed != first:
                break
            await asyncio.sleep(0.05)
        assert renewed is not None and renewed != first
        assert renewed in {g.token for g in entra_of(sim).refresh_tokens.tokens_of(TENANT_ID,
                                                                                  mfa_user)}
