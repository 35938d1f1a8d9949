"""deploy/: the systemd unit passes systemd's own check, and both deployments set only
configuration keys m365pbx knows, to values it accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m365pbx.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
EXAMPLE = ROOT / "src" / "m365pbx" / "config.example.yaml"
VENV_BIN = Path(sys.executable).parent


def _unit_environment(unit: str, credentials: Path) -> dict[str, str]:
    pairs = re.findall(r"^Environment=(\w+)=(.*)$", unit, flags=re.M)
    return {name: value.replace("%d", str(credentials)) for name, value in pairs}


def _container_environment(containerfile: str) -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?=^\S)", containerfile, flags=re.M | re.S)
    assert block is not None
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
                    reason="systemd-analyze not installed (Debian package systemd)")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = (DEPLOY / "m365pbx.service").read_text()
    assert "/opt/m365pbx/bin/m365pbx serve" in unit
    # verify insists that ExecStart's program exists: point it at this checkout's install.
    local = tmp_path / "m365pbx.service"
    local.write_text(unit.replace("/opt/m365pbx/bin/m365pbx", str(VENV_BIN / "m365pbx")))
    result = subprocess.run(["systemd-analyze", "verify", str(local)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_unit_keeps_the_secrets_key_in_a_credential_and_restarts_on_failure() -> None:
    unit = (DEPLOY / "m365pbx.service").read_text()
    assert "LoadCredential=secret-key:/etc/m365pbx/secret.key" in unit
    assert "Restart=on-failure" in unit and "StateDirectory=m365pbx" in unit
    assert "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit


def test_the_units_environment_is_configuration_m365pbx_accepts(tmp_path: Path) -> None:
    environ = _unit_environment((DEPLOY / "m365pbx.service").read_text(), tmp_path)
    environ.pop("M365PBX_CONFIG")
    settings = load_config(EXAMPLE, environ=environ)
    assert settings.secrets.key_file == tmp_path / "secret-key"
    assert settings.database.url == "sqlite+aiosqlite:////var/lib/m365pbx/m365pbx.db"


def test_the_containers_environment_is_configuration_m365pbx_accepts() -> None:
    containerfile = (DEPLOY / "Containerfile").read_text()
    environ = _container_environment(containerfile)
    assert environ["M365PBX_CONFIG"] == "/etc/m365pbx/m365pbx.yaml"
    overrides = {k: v for k, v in environ.items()
                 if k.startswith("M365PBX_") and k != "M365PBX_CONFIG"}
    settings = load_config(EXAMPLE, environ=overrides)
    assert settings.listen.host == "0.0.0.0"
    assert str(settings.secrets.key_file) == "/run/secrets/m365pbx-secret-key"
    assert settings.logging.format == "json"


def test_the_container_runs_as_a_user_installs_from_the_wheel_and_checks_liveness() -> None:
    containerfile = (DEPLOY / "Containerfile").read_text()
    users = re.findall(r"^USER (\S+)", containerfile, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert "install-wheel.sh /opt/m365pbx" in containerfile
    assert re.search(r"^VOLUME \[\"/var/lib/m365pbx\"\]", containerfile, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/livez", containerfile, flags=re.M)
