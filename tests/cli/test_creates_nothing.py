"""Commands that only read create nothing; `serve` needs a configuration file and says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import app

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
    path.write_text(CONFIG.format(db=tmp_path / "var" / "state.db", key=tmp_path / "var" /
                                  "secret.key"))
    return path


def test_api_key_list_creates_no_database_and_no_key(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    result = cli.invoke(app, ["api-key", "list", "--config", str(config)])
    assert result.exit_code == 1
    assert f"there is no database at {tmp_path / 'var' / 'state.db'} yet" in result.stderr
    assert "`m365pbx db upgrade`" in result.stderr
    assert not (tmp_path / "var").exists()


def test_api_key_list_reads_a_database_without_a_key_file(
    cli: CliRunner, config: Path, tmp_path: Path
) -> None:
    assert cli.invoke(app, ["db", "upgrade", "--config", str(config)]).exit_code == 0
    result = cli.invoke(app, ["api-key", "list", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "no API clients" in result.stdout
    assert not (tmp_path / "var" / "secret.key").exists()


def test_serve_without_a_configuration_file_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("M365PBX_")}
    # A process of its own: before the fix, serve started with the defaults and kept running.
    done = subprocess.run([sys.executable, "-c", "from m365pbx.cli import main; main()",
                           "serve"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    assert f"no configuration file at {tmp_path / 'm365pbx.yaml'}" in done.stderr
    assert "m365pbx config example" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_serve_with_a_missing_configuration_file_names_it(cli: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "etc" / "m365pbx.yaml"
    result = cli.invoke(app, ["serve", "--config", str(missing)])
    assert result.exit_code == 2
    assert f"no configuration file at {missing}" in result.stderr
    assert "m365pbx config example" in result.stderr
