"""`m365pbx admin create | password | list` and `m365pbx audit` against a SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import _register, app

CONFIG = """
database:
  url: sqlite+aiosqlite:///{db}
secrets:
  key_file: {key}
tenants:
  - name: contoso
    tenant_id: 00000000-0000-0000-0000-000000000001
    credentials:
      - name: graph
        client_id: 00000000-0000-0000-0000-000000000002
        client_secret: s3cret-value-never-in-the-audit
        permissions: [presence.read]
"""
PASSWORD = "a long enough password"


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("M365PBX_SECRET_KEY", raising=False)
    path = tmp_path / "m365pbx.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", key=tmp_path / "secret.key"))
    _register()
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_admins_are_created_once_with_a_long_password_and_audited(config: Path) -> None:
    code, out, err = run(config, "admin", "create", "alice", "--password-stdin",
                         stdin=PASSWORD + "\n")
    assert code == 0, err
    assert "created admin 'alice'" in out
    assert "admin.enabled: true" in err  # the UI is off in this configuration
    code, _, err = run(config, "admin", "create", "alice", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert code == 2 and "there is an admin named 'alice' already" in err
    code, _, err = run(config, "admin", "create", "bob", "--password-stdin", stdin="short\n")
    assert code == 2 and "at least 12 characters" in err
    code, _, err = run(config, "admin", "create", "Bad Name!", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert code == 2
    code, out, _ = run(config, "admin", "create", "carol", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, out  # asked for twice on a terminal
    code, out, err = run(config, "admin", "password", "alice", "--password-stdin",
                         stdin="another long password\n")
    assert code == 0, err
    code, _, err = run(config, "admin", "password", "nobody", "--password-stdin",
                       stdin="another long password\n")
    assert code == 2 and "no admin named 'nobody'" in err
    code, out, _ = run(config, "admin", "list")
    assert code == 0 and "alice" in out and "carol" in out and "last sign-in never" in out

    code, out, _ = run(config, "config", "apply")
    assert code == 0, out
    code, out, err = run(config, "audit", "--format", "json")
    assert code == 0, err
    events = json.loads(out)
    assert [e["action"] for e in events] == ["configuration.applied", "admin.password",
                                             "admin.create", "admin.create"]
    applied = events[0]
    assert applied["actor"] == "cli (config apply)"
    assert "tenant 'contoso'" in applied["details"]["created"]
    assert "s3cret" not in out and PASSWORD not in out
    code, out, _ = run(config, "audit", "--limit", "1")
    assert code == 0 and out.count("\n") == 1 and "configuration.applied" in out
    code, out, _ = run(config, "audit", "--object", "admin")
    assert "configuration" not in out and "admin.create  admin alice" in out
