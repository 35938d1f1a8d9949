"""`m365pbx check` as scripts call it: exit status 0 / 1 / 2 and `--format json`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from m365pbx.cli.app import _register, app
from m365sim.server import RunningServer
from tests.check.conftest import (
    GOOD_APP,
    NO_WRITE_APP,
    TENANT_ID,
    sim_of,
    webhook_endpoint,
    write_config,
)


async def _run(*args: str) -> Result:
    # The command runs its own event loop: in a worker thread, while the simulator serves here.
    _register()
    return await asyncio.to_thread(CliRunner().invoke, app, ["check", *args])


async def test_all_ok_exits_0_and_json_parses(server: RunningServer, tmp_path: Path) -> None:
    path = write_config(server, tmp_path)
    result = await _run("--config", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["exit_status"] == 0
    assert report["counts"]["fail"] == report["counts"]["warn"] == 0
    assert {f["area"] for f in report["findings"]} >= {"hosts", "permissions",
                                                       "service account", "pbx"}
    assert all(set(f) == {"area", "subject", "status", "message", "fix", "code"}
               for f in report["findings"])


async def test_a_warning_exits_1(server: RunningServer, tmp_path: Path) -> None:
    sim_of(server).settings.date_skew_s = 90
    result = await _run("--config", str(write_config(server, tmp_path)))
    assert result.exit_code == 1, result.output
    # The simulator's clock stands still while the wall clock runs on: a few seconds less.
    assert re.search(r"^WARN  clock: this host's clock is (8\d|90) s behind Microsoft's",
                     result.stdout, re.MULTILINE), result.stdout
    assert "      fix: Synchronise this host's clock with NTP" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("warn: ")


async def test_a_failure_exits_2_with_the_fix_in_json(server: RunningServer,
                                                      tmp_path: Path) -> None:
    path = write_config(server, tmp_path, app_id=NO_WRITE_APP)
    result = await _run("--config", str(path), "--format", "json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    failed = [f for f in report["findings"] if f["status"] == "fail"]
    assert len(failed) == 1 and "Presence.ReadWrite.All" in failed[0]["message"]
    assert f"adminconsent?client_id={NO_WRITE_APP}" in failed[0]["fix"]


def test_a_configuration_that_cannot_load_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("tenants: [{name: x}]\n")
    _register()
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.stderr


async def _store_sign_in(server: RunningServer, path: Path, upn: str) -> None:
    """Keep a refresh token for `upn` in the store, as `m365pbx signin` does."""
    from m365pbx.config import load_config
    from m365pbx.declarations import declarations_from_settings
    from m365pbx.store import Store, load_secret_box, upgrade_database
    from m365sim.entra import entra_of

    sim = sim_of(server)
    tenant = sim.directory.find_tenant(TENANT_ID)
    user = tenant.find_user(upn) if tenant is not None else None
    assert tenant is not None and user is not None
    refresh_token = entra_of(sim).refresh_tokens.issue(
        tenant_id=tenant.id, app_id=GOOD_APP, user_id=user.id,
        scopes=("Presence.Read.All", "User.Read.All", "openid", "profile", "offline_access"),
        now=sim.clock.now())
    settings = load_config(path, environ={})
    await upgrade_database(settings.database.url)
    store = Store.open(settings.database.url,
                       load_secret_box(key_file=settings.secrets.key_file, environ={}))
    try:
        async with store.transaction() as tx:
            await tx.sync_declared(declarations_from_settings(settings))
            row = await tx.service_accounts.find(upn)
            assert row is not None
            await tx.service_accounts.set_refresh_token(row.id, refresh_token)
    finally:
        await store.close()


async def test_a_device_code_account_signs_in_with_its_stored_sign_in(
        server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    upn = "svc-mfa@contoso.com"
    async with webhook_endpoint() as url:
        path = write_config(server, tmp_path, public_url=url, accounts=[
            {"upn": upn, "credential": "graph", "sign_in": "device_code"}])
        before = await _run("--config", str(path), "--format", "json")
        # The check creates nothing: no database, no key file.
        assert not (tmp_path / "state.db").exists()
        assert not (tmp_path / "secret.key").exists()
        await _store_sign_in(server, path, upn)
        after = await _run("--config", str(path), "--format", "json")
    # Before `m365pbx signin`: no database yet, and the check does not create one.
    said = {f["message"]: f for f in json.loads(before.stdout)["findings"]
            if f["subject"] == f"service account {upn}"}
    assert any(m.startswith("the account has not signed in with a device code yet (there is "
                            "no database at ") for m in said), said
    signed = [f for f in json.loads(after.stdout)["findings"]
              if f["subject"] == f"service account {upn}"]
    assert [(f["status"], f["message"]) for f in signed] == [
        ("ok", "signs in with its stored device-code sign-in"),
        ("ok", "Presence.Read.All is granted (delegated)"),
        ("ok", "has an enabled Teams licence")]
