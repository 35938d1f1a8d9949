"""`m365pbx check` as scripts call it: exit status 0 / 1 / 2 and `--format json`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from typer.testing import CliRunner, Result

from m365pbx.cli.app import _register, app
from m365sim.server import RunningServer
from tests.check.conftest import NO_WRITE_APP, sim_of, write_config


async def _run(*args: str) -> Result:
    # The command runs its own event loop: in a worker thread, while the simulator serves here.
    _register()
    return await asyncio.to_thread(CliRunner().invoke, app, ["check", *args])


async def test_all_ok_exits_0_and_json_parses(server: RunningServer, tmp_path: Path) -> None:
    path = write_config(server, tmp_path)
    result = await _run("--config", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "ok" and report["exit_status"] == 0
    assert report["counts"]["fail"] == report["counts"]["warn"] == 0
    assert {f["area"] for f in report["findings"]} >= {"hosts", "permissions",
                                                       "service account", "pbx"}
    assert all(set(f) == {"area", "subject", "status", "message", "fix", "code"}
               for f in report["findings"])


async def test_a_warning_exits_1(server: RunningServer, tmp_path: Path) -> None:
    sim_of(server).settings.date_skew_s = 90
    result = await _run("--config", str(write_config(server, tmp_path)))
    assert result.exit_code == 1, result.output
    # The simulator's clock stands still while the wall clock runs on: a few seconds less.
    assert re.search(r"^WARN  clock: this host's clock is (8\d|90) s behind Microsoft's",
                     result.stdout, re.MULTILINE), result.stdout
    assert "      fix: Synchronise this host's clock with NTP" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("warn: ")


async def test_a_failure_exits_2_with_the_fix_in_json(server: RunningServer,
                                                      tmp_path: Path) -> None:
    path = write_config(server, tmp_path, app_id=NO_WRITE_APP)
    result = await _run("--config", str(path), "--format", "json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    failed = [f for f in report["findings"] if f["status"] == "fail"]
    assert len(failed) == 1 and "Presence.ReadWrite.All" in failed[0]["message"]
    assert f"adminconsent?client_id={NO_WRITE_APP}" in failed[0]["fix"]


def test_a_configuration_that_cannot_load_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("tenants: [{name: x}]\n")
    _register()
    result = CliRunner().invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.stderr
