"""`m365pbx db backup | restore | status` and `db upgrade --config`, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.store import head_revision
from tests.store.conftest import _postgres_problem as postgres_problem
from tests.store.conftest import create_pg_database, drop_pg_database, pg_url

CONFIG = """
database:
  url: {url}
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that does not hold anything yet, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'data' / 'm365pbx.db'}"
        return
    problem = postgres_problem()
    if problem is not None:
        if "CI" in os.environ:
            pytest.fail(f"PostgreSQL is not reachable: {problem}")
        pytest.skip(f"PostgreSQL is not reachable: {problem}")
    name = f"m365pbx_test_{secrets.token_hex(6)}"
    asyncio.run(create_pg_database(name))
    yield pg_url(name)
    asyncio.run(drop_pg_database(name))


@pytest.fixture
def config(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    monkeypatch.delenv("M365PBX_DATABASE__URL", raising=False)
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(url=database, key=tmp_path / "secret.key"))
    return path


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def clients(cli: CliRunner, config: Path) -> str:
    code, out, err = run(cli, "api-key", "list", "--config", str(config))
    assert code == 0, err
    return out


def test_upgrade_takes_the_database_from_the_configuration(
    cli: CliRunner, config: Path, database: str
) -> None:
    code, out, err = run(cli, "db", "upgrade", "--config", str(config))
    assert code == 0, err
    assert f"is at revision {head_revision()} (was empty)" in out
    code, out, err = run(cli, "db", "status", "--config", str(config))
    assert code == 0, err
    assert f"revision: {head_revision()}" in out
    assert "up to date" in out


def test_backup_and_restore_round_trip(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    code, _, err = run(cli, "config", "apply", "--config", str(config))
    assert code == 0, err
    code, _, err = run(cli, "api-key", "create", "switchboard", "--config", str(config))
    assert code == 0, err
    backup = tmp_path / "backups" / "m365pbx.backup"
    backup.parent.mkdir()
    code, out, err = run(cli, "db", "backup", str(backup), "--config", str(config))
    assert code == 0, err
    assert f"to {backup}" in out
    assert "the secret key is not in the backup" in err
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert [p.name for p in backup.parent.iterdir()] == [backup.name]  # no partial file left

    # After the backup: the switchboard is revoked and another client is added.
    assert run(cli, "api-key", "revoke", "switchboard", "--config", str(config))[0] == 0
    assert run(cli, "api-key", "create", "phone-app", "--config", str(config))[0] == 0
    assert "phone-app" in clients(cli, config)

    code, out, err = run(cli, "db", "restore", str(backup), "--yes", "--config", str(config))
    assert code == 0, err
    assert f"restored {backup}" in out
    assert f"(revision {head_revision()})" in out
    listed = clients(cli, config)
    assert "switchboard" in listed and "phone-app" not in listed
    switchboard = next(line for line in listed.splitlines() if "switchboard" in line)
    assert switchboard.rstrip(" │").endswith("-"), "restored as not revoked"
    # The secrets in the restored tables still decrypt with the key.
    code, _, err = run(cli, "config", "apply", "--config", str(config))
    assert code == 0, err


def test_backup_refuses_to_overwrite_without_force(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    assert run(cli, "db", "upgrade", "--config", str(config))[0] == 0
    backup = tmp_path / "m365pbx.backup"
    backup.write_text("precious")
    code, _, err = run(cli, "db", "backup", str(backup), "--config", str(config))
    assert code == 2
    assert "give --force" in err
    assert backup.read_text() == "precious"
    assert run(cli, "db", "backup", str(backup), "--force", "--config", str(config))[0] == 0


def test_restore_refuses_a_file_that_is_no_backup(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    assert run(cli, "db", "upgrade", "--config", str(config))[0] == 0
    other = tmp_path / "notes.txt"
    other.write_text("not a backup")
    code, _, err = run(cli, "db", "restore", str(other), "--yes", "--config", str(config))
    assert code == 2
    assert "is not a backup made by `m365pbx db backup`" in err


def test_restore_asks_first(cli: CliRunner, config: Path, tmp_path: Path) -> None:
    assert run(cli, "db", "upgrade", "--config", str(config))[0] == 0
    backup = tmp_path / "m365pbx.backup"
    assert run(cli, "db", "backup", str(backup), "--config", str(config))[0] == 0
    result = cli.invoke(app, ["db", "restore", str(backup), "--config", str(config)], input="n\n")
    assert result.exit_code == 1
    assert "nothing restored" in result.stderr


def test_a_sqlite_backup_is_not_restored_into_postgresql(
    cli: CliRunner, config: Path, database: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    other.write_bytes(b"SQLite format 3\x00" + bytes(100))
    code, _, err = run(cli, "db", "restore", str(other), "--yes", "--config", str(config))
    if database.startswith("sqlite"):
        assert code == 1  # a SQLite file, but without m365pbx's tables
        assert "not an m365pbx backup" in err or "cannot read" in err
    else:
        assert code == 1
        assert "is a sqlite backup; the database is PostgreSQL" in err


def test_status_of_a_missing_sqlite_database_creates_nothing(
    cli: CliRunner, tmp_path: Path
) -> None:
    database = tmp_path / "none" / "m365pbx.db"
    code, out, err = run(cli, "db", "status", "--database-url", f"sqlite:///{database}")
    assert code == 1
    assert f"there is no database file at {database}" in out
    assert "`m365pbx db upgrade`" in err
    assert not database.parent.exists()


def test_status_of_an_empty_database_says_it_needs_an_upgrade(
    cli: CliRunner, tmp_path: Path
) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()
    code, out, _ = run(cli, "db", "status", "--database-url", f"sqlite:///{database}")
    assert code == 0
    assert "revision: none (empty database)" in out
    assert f"newest:   {head_revision()}" in out
    assert "needs an upgrade" in out


def test_status_never_shows_the_password(cli: CliRunner) -> None:
    url = "postgresql+asyncpg://app:Sup3rS3cret@127.0.0.1:1/m365pbx"
    code, out, err = run(cli, "db", "status", "--database-url", url)
    assert code == 1
    assert "database: postgresql+asyncpg://app:***@127.0.0.1:1/m365pbx" in out
    assert "Sup3rS3cret" not in out + err
