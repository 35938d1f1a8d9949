"""`m365pbx config check|show|example`: exit codes, summaries, every problem, no secrets."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from m365pbx.cli.app import app

SECRET = "Zebra-Quokka-S3cret!7"

VALID = {
    "tenants": [
        {
            "name": "contoso",
            "tenant_id": "contoso.onmicrosoft.com",
            "credentials": [
                {
                    "name": "graph",
                    "client_id": "0c6e2f1a-7b3d-4e59-8a10-2f4d6b8c9e01",
                    "client_secret": SECRET,
                    "permissions": ["presence.read"],
                }
            ],
            "service_accounts": [
                {
                    "upn": "presence@contoso.com",
                    "credential": "graph",
                    "sign_in": "password",
                    "password": SECRET,
                }
            ],
        }
    ],
    "pbx_connections": [{"name": "switchboard", "kind": "api", "tenant": "contoso"}],
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "m365pbx.yaml"
    path.write_text(yaml.safe_dump(VALID, sort_keys=False), encoding="utf-8")
    return path


def test_check_ok_prints_a_summary_and_exits_0(cli: CliRunner, config_file: Path) -> None:
    result = cli.invoke(app, ["config", "check", "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "config OK: 1 tenant, 1 credential, 1 service account, 1 PBX connection"
    )
    assert "service account presence@contoso.com: password via graph" in result.stdout
    assert SECRET not in result.output


def test_check_reports_every_problem_and_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    broken = copy.deepcopy(VALID)
    broken["listen"] = {"prot": 80}
    account = broken["tenants"][0]["service_accounts"][0]
    account["sign_in"] = "device_code"  # with a password: refused, and the password not shown
    broken["pbx_connections"][0]["tenant"] = "fabrikam"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    result = cli.invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "error: the configuration has 3 problems:"
    expected = [
        "tenants[0].service_accounts[0].password: not used when sign_in is 'device_code'",
        "pbx_connections[0].tenant: no tenant named 'fabrikam'",
        "listen.prot: unknown key 'prot' (did you mean 'port'?)",
    ]
    assert len(lines) == 1 + len(expected)
    for line, text in zip(lines[1:], expected, strict=True):  # in file order
        assert line.startswith(f"  {path}:")
        assert text in line
    assert SECRET not in result.output


def test_check_reports_a_syntax_error(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tenants:\n  - name: [contoso\n", encoding="utf-8")
    result = cli.invoke(app, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2
    assert f"{path}:3:1: YAML syntax error" in result.stderr


def test_check_without_any_file_uses_defaults(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("M365PBX_CONFIG", raising=False)
    result = cli.invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "config OK: 0 tenants" in result.stdout
    assert "(no file: defaults and environment only)" in result.stdout


def test_check_prints_warnings_on_stderr(cli: CliRunner, config_file: Path) -> None:
    result = cli.invoke(
        app, ["config", "check", "-c", str(config_file)], env={"M365PBX_LISTEN_PORT": "1"}
    )
    assert result.exit_code == 0
    assert "warning: environment variable M365PBX_LISTEN_PORT is not a setting" in result.stderr
    assert "(did you mean M365PBX_LISTEN__PORT?)" in result.stderr


def test_show_prints_effective_yaml_with_secrets_masked(cli: CliRunner, config_file: Path) -> None:
    result = cli.invoke(
        app, ["config", "show", "--config", str(config_file)], env={"M365PBX_LISTEN__PORT": "9001"}
    )
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["listen"] == {"host": "127.0.0.1", "port": 9001}
    assert shown["tenants"][0]["credentials"][0]["client_secret"] == "********"
    assert shown["tenants"][0]["service_accounts"][0]["password"] == "********"
    assert shown["tenants"][0]["directory"]["full_sync_interval"] == "1h"
    assert SECRET not in result.output


def test_show_on_a_broken_file_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("listen:\n  port: eighty\n", encoding="utf-8")
    result = cli.invoke(app, ["config", "show", "-c", str(path)])
    assert result.exit_code == 2
    assert "listen.port: input should be a valid integer" in result.stderr


def test_example_prints_a_file_that_check_accepts(cli: CliRunner, tmp_path: Path) -> None:
    printed = cli.invoke(app, ["config", "example"])
    assert printed.exit_code == 0
    path = tmp_path / "example.yaml"
    path.write_text(printed.stdout, encoding="utf-8")
    checked = cli.invoke(app, ["config", "check", "-c", str(path)])
    assert checked.exit_code == 0, checked.output
    assert "config OK: 2 tenants, 3 credentials, 2 service accounts, 2 PBX connections" in (
        checked.stdout
    )
