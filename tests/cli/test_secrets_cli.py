"""`m365pbx secrets rotate`: a new key encrypts every stored secret; the old one is useless."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.store import SecretBox, SecretKeyError, Store, generate_key
from m365pbx.store.secrets import read_key_file

CONFIG = """
database:
  url: sqlite+aiosqlite:///{db}
secrets:
  key_file: {key}
tenants:
  - name: contoso
    tenant_id: 9188040d-6c67-4c5b-b112-36a304b66dad
    credentials:
      - name: graph
        client_id: 6731de76-14a6-49ae-97bc-6eba6914391e
        client_secret: "s3cr3t-value"
        permissions: [presence.read]
"""


@pytest.fixture
def config(tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    result = cli.invoke(app, ["config", "apply", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


def client_secret(tmp_path: Path, keys: list[str]) -> str | None:
    async def read() -> str | None:
        store = Store.open(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
                           SecretBox(keys, source="test"))
        try:
            async with store.transaction() as tx:
                row = await tx.credentials.require("graph", needed_by="test")
                return tx.credentials.client_secret(row)
        finally:
            await store.close()

    return asyncio.run(read())


def test_rotate_with_a_key_file(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "secret.key"
    [old] = read_key_file(key_file)
    assert client_secret(tmp_path, [old]) == "s3cr3t-value"

    result = cli.invoke(app, ["secrets", "rotate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 stored secrets with a new key" in result.stdout

    [new] = read_key_file(key_file)
    assert new != old
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert client_secret(tmp_path, [new]) == "s3cr3t-value"
    with pytest.raises(SecretKeyError, match="cannot decrypt"):
        client_secret(tmp_path, [old])
    assert old not in result.output and new not in result.output
    # The service starts with the rotated key file as it is.
    again = cli.invoke(app, ["config", "apply", "--config", str(config)])
    assert again.exit_code == 0, again.output


def test_rotate_with_the_environment_uses_its_first_key(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    [old] = read_key_file(tmp_path / "secret.key")
    new = generate_key()
    result = cli.invoke(app, ["secrets", "rotate", "--config", str(config)],
                        env={"M365PBX_SECRET_KEY": f"{new},{old}"})
    assert result.exit_code == 0, result.output
    assert "re-encrypted 1 stored secrets with the first key of M365PBX_SECRET_KEY" in (
        result.stdout)
    assert "now remove the other 1 key(s)" in result.stdout
    assert client_secret(tmp_path, [new]) == "s3cr3t-value"
    with pytest.raises(SecretKeyError):
        client_secret(tmp_path, [old])


def test_rotate_with_one_key_in_the_environment_explains_what_to_do(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    [old] = read_key_file(tmp_path / "secret.key")
    result = cli.invoke(app, ["secrets", "rotate", "--config", str(config)],
                        env={"M365PBX_SECRET_KEY": old})
    assert result.exit_code == 2
    assert "put a new key first" in result.stderr
    assert client_secret(tmp_path, [old]) == "s3cr3t-value"


def test_rotate_with_a_wrong_key_changes_nothing(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret.key"
    [old] = read_key_file(key_file)
    stranger = generate_key()
    key_file.write_text(f"{stranger}\n")
    result = cli.invoke(app, ["secrets", "rotate", "--config", str(config)])
    assert result.exit_code == 2
    assert "cannot decrypt" in result.stderr
    key_file.write_text(f"{old}\n")
    assert client_secret(tmp_path, [old]) == "s3cr3t-value"
