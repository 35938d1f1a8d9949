"""`m365pbx api-key create | list | revoke` against a configured SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.pbx.api.keys import KEY_PREFIX, InsufficientScope, InvalidApiKey, Scope, key_id_of
from m365pbx.service.api_keys import StoreApiKeyChecker
from m365pbx.store import Store, load_secret_box

CONFIG = """
database:
  url: sqlite+aiosqlite:///{db}
secrets:
  key_file: {key}
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    # The secret key file is created by `config apply`, as an operator would first run it.
    result = CliRunner().invoke(app, ["config", "apply", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["api-key", *args])
    return result.exit_code, result.stdout, result.stderr


def _store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
                      load_secret_box(key_file=tmp_path / "secret.key"))


async def _check(tmp_path: Path, key: str, scope: Scope) -> str:
    store = _store(tmp_path)
    try:
        return (await StoreApiKeyChecker(store).check(key, scope)).name
    finally:
        await store.close()


async def _raw_rows(tmp_path: Path) -> list[str]:
    store = _store(tmp_path)
    try:
        async with store.engine.connect() as connection:
            rows = await connection.execute(text("SELECT * FROM api_clients"))
            return [" ".join(str(value) for value in row) for row in rows]
    finally:
        await store.close()


def test_create_prints_the_key_once_on_stdout(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    code, out, err = run(cli, "create", "switchboard", "--scope", "read", "--scope", "write",
                         "--config", str(config))
    assert code == 0, err
    key = out.strip()
    assert key.startswith(KEY_PREFIX) and key_id_of(key) is not None
    assert "created API client 'switchboard' with scopes: read, write" in err
    assert "cannot show it again" in err
    assert asyncio.run(_check(tmp_path, key, Scope.WRITE)) == "switchboard"
    rows = asyncio.run(_raw_rows(tmp_path))
    assert len(rows) == 1 and key[len(KEY_PREFIX):] not in rows[0]


def test_the_default_scope_is_read(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    code, out, _ = run(cli, "create", "board", "--config", str(config))
    assert code == 0
    key = out.strip()
    assert asyncio.run(_check(tmp_path, key, Scope.READ)) == "board"
    with pytest.raises(InsufficientScope, match="lacks the 'write' scope"):
        asyncio.run(_check(tmp_path, key, Scope.WRITE))


def test_list_shows_clients_but_never_keys(cli: CliRunner, config: Path) -> None:
    _, key, _ = run(cli, "create", "board", "--config", str(config))
    run(cli, "create", "pbx", "-s", "write", "--config", str(config))
    run(cli, "revoke", "pbx", "--config", str(config))
    code, out, _ = run(cli, "list", "--config", str(config))
    assert code == 0
    assert "board" in out and "pbx" in out and "write" in out
    assert f"m365pbx_{key_id_of(key.strip())}" in out
    assert key.strip() not in out
    assert out.count("UTC") >= 3  # created twice, revoked once


def test_list_without_clients(cli: CliRunner, config: Path) -> None:
    code, out, _ = run(cli, "list", "--config", str(config))
    assert code == 0
    assert "no API clients" in out


def test_revoke(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    _, key, _ = run(cli, "create", "board", "--config", str(config))
    code, out, _ = run(cli, "revoke", "board", "--config", str(config))
    assert (code, out.strip()) == (0, "revoked the API key of 'board'")
    code, out, _ = run(cli, "revoke", "board", "--config", str(config))
    assert (code, out.strip()) == (0, "the API key of 'board' was revoked already")
    with pytest.raises(InvalidApiKey, match="revoked"):
        asyncio.run(_check(tmp_path, key.strip(), Scope.READ))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "Board Room"], "NAME: expected a short name"),
        (["create", "board", "--scope", "admin"], "--scope: unknown scope 'admin'"),
        (["revoke", "nobody"], "there is no API client named 'nobody'"),
    ],
)
def test_bad_input_is_exit_2_and_changes_nothing(
    cli: CliRunner, config: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = run(cli, *args, "--config", str(config))
    assert code == 2
    assert message in err
    assert out == ""
    assert asyncio.run(_raw_rows(tmp_path)) == []


def test_a_taken_name_is_refused(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    run(cli, "create", "board", "--config", str(config))
    code, out, err = run(cli, "create", "board", "--config", str(config))
    assert code == 2
    assert "an API client named 'board' exists already" in err
    assert out == ""
    assert len(asyncio.run(_raw_rows(tmp_path))) == 1
