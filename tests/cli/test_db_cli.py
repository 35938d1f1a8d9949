"""`m365pbx db upgrade`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import _register, app
from m365pbx.store import head_revision

runner = CliRunner()


@pytest.fixture(autouse=True)
def registered() -> None:
    _register()


def test_upgrade_creates_and_then_keeps_the_database(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "m365pbx.db"
    url = f"sqlite+aiosqlite:///{database}"
    first = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert first.exit_code == 0, first.output
    assert f"database at {url} is at revision {head_revision()} (was empty)" in first.output
    assert database.is_file()
    again = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert again.exit_code == 0, again.output
    assert f"is at revision {head_revision()} (already up to date)" in again.output


def test_url_from_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = runner.invoke(app, ["db", "upgrade"], env={"M365PBX_DATABASE__URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").is_file()


def test_default_url_is_var_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("M365PBX_DATABASE__URL", raising=False)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "m365pbx.db").is_file()


def test_unsupported_url_is_bad_input() -> None:
    result = runner.invoke(app, ["db", "upgrade", "--database-url", "mysql://u:pw@h/d"])
    assert result.exit_code == 2
    assert "--database-url: unsupported database 'mysql'" in result.output


def test_unreachable_database_fails_without_showing_the_password() -> None:
    url = "postgresql+asyncpg://app:Sup3rS3cret@127.0.0.1:1/m365pbx"
    result = runner.invoke(app, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 1
    assert "cannot upgrade the database at postgresql+asyncpg://app:***@127.0.0.1:1" in (
        result.output
    )
    assert "Sup3rS3cret" not in result.output
