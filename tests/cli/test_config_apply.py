"""`m365pbx config apply`: the file's objects land in the store, file-managed, secrets sealed."""

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app

SECRET = "Zq8~distinctive-client-secret-4711"
PASSWORD = "pässwörd with spaces & quotes\"'"
SIP_PASSWORD = "sip-digest-secret-0815"

CONFIG = f"""
database:
  url: sqlite+aiosqlite:///{{db}}
secrets:
  key_file: {{key}}
tenants:
  - name: contoso
    tenant_id: 9188040d-6c67-4c5b-b112-36a304b66dad
    credentials:
      - name: graph
        client_id: 6731de76-14a6-49ae-97bc-6eba6914391e
        client_secret: "{SECRET}"
        permissions: [presence.read, presence.write, users.read]
    service_accounts:
      - upn: presence@contoso.com
        credential: graph
        sign_in: password
        password: '{PASSWORD.replace("'", "''")}'
pbx_connections:
  - name: office-sip
    kind: sip
    tenant: contoso
    settings:
      server: 127.0.0.1:5060
      domain: pbx.contoso.com
      username: gateway
      password: "{SIP_PASSWORD}"
  - name: switchboard
    kind: api
    tenant: contoso
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m365pbx.yaml"
    path.write_text(text.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    return path


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("M365PBX_SECRET_KEY", "M365PBX_CONFIG", "M365PBX_DATABASE__URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("isolated_env")
def test_apply_writes_file_managed_objects_and_seals_secrets(
    cli: CliRunner, tmp_path: Path
) -> None:
    config = write_config(tmp_path, CONFIG)
    result = cli.invoke(app, ["config", "apply", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "created:" in result.output and "tenant 'contoso'" in result.output
    for secret in (SECRET, PASSWORD, SIP_PASSWORD):
        assert secret not in result.output

    with sqlite3.connect(tmp_path / "state.db") as db:
        origins = {row[0] for row in db.execute("SELECT origin FROM pbx_connections")}
        assert origins == {"file"}
        dump = "\n".join(db.iterdump())
    for secret in (SECRET, PASSWORD, SIP_PASSWORD):
        assert secret not in dump, "a secret is stored in plaintext"
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600

    again = cli.invoke(app, ["config", "apply", "--config", str(config)])
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output


@pytest.mark.usefixtures("isolated_env")
def test_a_connection_no_longer_declared_is_removed(cli: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG)
    assert cli.invoke(app, ["config", "apply", "--config", str(config)]).exit_code == 0
    shorter = CONFIG[: CONFIG.index("  - name: switchboard")]
    config = write_config(tmp_path, shorter)
    result = cli.invoke(app, ["config", "apply", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "removed (no longer declared): PBX connection 'switchboard'" in result.output


@pytest.mark.usefixtures("isolated_env")
def test_a_key_file_others_can_read_is_refused_and_nothing_is_written(
    cli: CliRunner, tmp_path: Path
) -> None:
    key = tmp_path / "secret.key"
    key.write_text("not-even-a-key\n")
    key.chmod(0o644)
    config = write_config(tmp_path, CONFIG)
    result = cli.invoke(app, ["config", "apply", "--config", str(config)])
    assert result.exit_code == 2
    assert "chmod 600" in result.output
    assert not (tmp_path / "state.db").exists()
