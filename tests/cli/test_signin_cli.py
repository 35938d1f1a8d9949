"""`m365pbx signin UPN`: device-code sign-in of a service account, with Entra ID faked.

The end-to-end run against the simulator's Entra ID is tests/e2e/test_device_code_account.py;
here the device-code flow is a stand-in so that every answer of the command can be checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.graph import auth as graph_auth
from m365pbx.graph.auth import Authority, ClientCredential, DeviceCodePrompt, DeviceCodeResult
from m365pbx.graph.errors import DeviceCodeDeclined
from m365pbx.store import Store, load_secret_box, upgrade_database

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
CLIENT = "6731de76-14a6-49ae-97bc-6eba6914391e"
REFRESH_TOKEN = "0.AAAA-refresh-token-that-must-never-be-shown"
MESSAGE = ("To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
           "and enter the code ABCD2EFGH to authenticate.")

CONFIG = f"""
database:
  url: sqlite+aiosqlite:///{{db}}
secrets:
  key_file: {{key}}
tenants:
  - name: contoso
    tenant_id: {TENANT}
    credentials:
      - name: graph
        client_id: {CLIENT}
        client_secret: "app-secret-value"
        permissions: [presence.read, users.read]
    service_accounts:
      - upn: mfa@contoso.com
        credential: graph
        sign_in: device_code
      - upn: svc@contoso.com
        credential: graph
        sign_in: password
        password: "pw"
"""


class FakeDeviceCode:
    """Stands in for graph.auth.DeviceCodeSignIn: who signs in, or how it fails."""

    signs_in: ClassVar[str] = "mfa@contoso.com"
    failure: ClassVar[Exception | None] = None
    seen: ClassVar[list[tuple[Authority, ClientCredential]]] = []

    def __init__(self, authority: Authority, credential: ClientCredential) -> None:
        FakeDeviceCode.seen.append((authority, credential))

    async def start(self) -> DeviceCodePrompt:
        return DeviceCodePrompt("ABCD2EFGH", "https://microsoft.com/devicelogin", MESSAGE,
                                900, {})

    async def finish(self, prompt: DeviceCodePrompt) -> DeviceCodeResult:
        if self.failure is not None:
            raise self.failure
        return DeviceCodeResult(upn=self.signs_in, refresh_token=REFRESH_TOKEN)


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    # The command imports the flow when it runs (the CLI starts without Graph's modules).
    monkeypatch.setattr(graph_auth, "DeviceCodeSignIn", FakeDeviceCode)
    monkeypatch.setattr(FakeDeviceCode, "signs_in", "mfa@contoso.com")
    monkeypatch.setattr(FakeDeviceCode, "failure", None)
    monkeypatch.setattr(FakeDeviceCode, "seen", [])
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    return path


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(tmp_path: Path, upn: str) -> str | None:
    async def read() -> str | None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
        await upgrade_database(url)  # a failed sign-in may not have created it at all
        store = Store.open(url, load_secret_box(key_file=tmp_path / "secret.key"))
        try:
            async with store.transaction() as tx:
                row = await tx.service_accounts.find(upn)
                return None if row is None else tx.service_accounts.refresh_token(row)
        finally:
            await store.close()

    return asyncio.run(read())


def test_signin_prints_microsofts_message_and_stores_the_token_encrypted(
    cli: CliRunner, config: Path, tmp_path: Path,
) -> None:
    code, out, err = run(cli, "signin", "MFA@contoso.com", "--config", str(config))
    assert code == 0, err
    assert MESSAGE in out
    assert "signed in as mfa@contoso.com" in out
    assert "Sign in there as mfa@contoso.com" in err
    assert REFRESH_TOKEN not in out + err
    assert stored(tmp_path, "mfa@contoso.com") == REFRESH_TOKEN
    assert REFRESH_TOKEN.encode() not in (tmp_path / "state.db").read_bytes()
    # The account signs in through the configured app as a public client (no secret sent).
    authority, credential = FakeDeviceCode.seen[0]
    assert authority.tenant == TENANT and authority.host == "https://login.microsoftonline.com"
    assert credential == ClientCredential(CLIENT)


def test_signin_refuses_an_account_that_is_not_declared(cli: CliRunner, config: Path) -> None:
    code, _, err = run(cli, "signin", "nobody@contoso.com", "--config", str(config))
    assert code == 2
    assert "no service account 'nobody@contoso.com' is declared" in err
    assert "mfa@contoso.com, svc@contoso.com" in err
    assert FakeDeviceCode.seen == []


def test_signin_refuses_a_password_account_and_says_how_to_declare_it(
    cli: CliRunner, config: Path, tmp_path: Path,
) -> None:
    code, _, err = run(cli, "signin", "svc@contoso.com", "--config", str(config))
    assert code == 2
    assert "declared with 'sign_in: password'" in err
    assert "declare it with 'sign_in: device_code'" in err
    assert FakeDeviceCode.seen == []


def test_signin_by_someone_else_stores_nothing(
    cli: CliRunner, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FakeDeviceCode, "signs_in", "anna@contoso.com")
    code, out, err = run(cli, "signin", "mfa@contoso.com", "--config", str(config))
    assert code == 1
    assert "the code was entered by anna@contoso.com, not mfa@contoso.com" in err
    assert "nothing was stored" in err
    assert REFRESH_TOKEN not in out + err
    assert stored(tmp_path, "mfa@contoso.com") is None


def test_a_declined_signin_is_explained_and_stores_nothing(
    cli: CliRunner, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    declined = DeviceCodeDeclined("the device-code sign-in was declined",
                                  hint="Start it again if that was a mistake.")
    monkeypatch.setattr(FakeDeviceCode, "failure", declined)
    code, _, err = run(cli, "signin", "mfa@contoso.com", "--config", str(config))
    assert code == 1
    assert ("the sign-in of mfa@contoso.com failed: the device-code sign-in was declined. "
            "Start it again if that was a mistake.") in err
    assert stored(tmp_path, "mfa@contoso.com") is None


def test_takeover_of_a_device_code_account_needs_its_signin_first(
    cli: CliRunner, config: Path,
) -> None:
    code, _, err = run(cli, "subscriptions", "takeover", "--account", "mfa@contoso.com",
                       "--config", str(config))
    assert code == 2
    assert "has not signed in yet; run 'm365pbx signin mfa@contoso.com' first" in err


def test_takeover_refuses_an_account_that_is_not_declared(cli: CliRunner, config: Path) -> None:
    code, _, err = run(cli, "subscriptions", "takeover", "--account", "x@contoso.com",
                       "--config", str(config))
    assert code == 2
    assert "no service account 'x@contoso.com' is declared" in err
