"""The CLI starts light: `--help` and `mapping explain` load no web, database or MSAL modules.

A behaviour guard, not a timing test: each heavy package costs hundreds of milliseconds at
start (`m365pbx --help` took 2.6 s when every command imported FastAPI, SQLAlchemy and
Alembic up front). The commands run in a fresh interpreter, which then lists what it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "msal", "asyncpg",
         "aiosqlite", "httpx", "cryptography", "pydantic", "pydantic_settings")

PROBE = """
import contextlib, io, json, sys
from m365pbx.cli.app import app, _register
_register()
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        app(sys.argv[1:], prog_name="m365pbx")
    except SystemExit as exit:
        code = exit.code
loaded = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"code": code, "output": out.getvalue(), "loaded": loaded}))
"""


def _run(*args: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _heavy(loaded: object) -> list[str]:
    assert isinstance(loaded, list)
    return [name for name in HEAVY if name in loaded]


def test_importing_the_cli_loads_no_heavy_package() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys, m365pbx.cli; "
         "from m365pbx.cli.commands import register; register(); "
         "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))"],
        capture_output=True, text=True, timeout=120, check=True)
    assert _heavy(json.loads(done.stdout)) == []


# The console script as an admin runs it; what it loaded is listed when the process exits.
CONSOLE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
sys.argv[0] = "m365pbx"
from m365pbx.cli import main
main()
"""


def _console(*args: str) -> tuple[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", CONSOLE, *args], capture_output=True,
                          text=True, timeout=120, check=True)
    loaded: list[str] = json.loads(done.stderr.splitlines()[-1])
    return done.stdout, loaded


def _command_modules(loaded: list[str]) -> list[str]:
    from m365pbx.cli.commands import COMMAND_MODULES

    return [name for name in COMMAND_MODULES if f"m365pbx.cli.{name}" in loaded]


def test_a_command_loads_only_its_own_module() -> None:
    output, loaded = _console("mapping", "explain", "--availability", "Busy")
    assert output.splitlines()[0] == "busy"
    assert _command_modules(loaded) == ["mapping"]
    output, loaded = _console("mapping", "--help")
    assert "explain" in output
    assert _command_modules(loaded) == ["mapping"]


def test_help_still_lists_every_command() -> None:
    from m365pbx.cli.commands import COMMAND_MODULES, MODULE_OF_COMMAND

    output, loaded = _console("--help")
    assert _command_modules(loaded) == list(COMMAND_MODULES)
    listed = {line.split()[0] for line in output.splitlines() if line.startswith("  ")}
    assert set(MODULE_OF_COMMAND) <= listed


def test_each_command_is_registered_by_the_module_the_table_names() -> None:
    # Every registered command and group, with the module its functions live in.
    probe = """
import json
from m365pbx.cli.app import app, _register
_register()
found = {}
for command in app.registered_commands:
    found[command.name] = command.callback.__module__
for group in app.registered_groups:
    modules = {c.callback.__module__ for c in group.typer_instance.registered_commands}
    found[group.name] = sorted(modules)[0]
print(json.dumps(found))
"""
    from m365pbx.cli.commands import MODULE_OF_COMMAND

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    found = json.loads(done.stdout)
    assert found == {name: f"m365pbx.cli.{module}" for name, module in MODULE_OF_COMMAND.items()}


@pytest.mark.parametrize("args", [
    ["--help"],
    ["--version"],
    ["db", "--help"],
    ["match", "--help"],
    ["check", "--help"],
    ["mapping", "explain", "--availability", "Busy"],
    ["mapping", "explain", "--line-state", "busy"],
])
def test_light_commands_load_no_heavy_package(args: list[str]) -> None:
    result = _run(*args)
    assert result["code"] in (0, None), result["output"]
    assert _heavy(result["loaded"]) == []


def test_values_that_need_converting_still_are(tmp_path: Path) -> None:
    # Typer's own conversion (with pydantic) still runs where a value needs it: numbers, paths.
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("teams_to_pbx:\n  - {availability: Busy, pbx: dnd}\n")
    result = _run("mapping", "explain", "--availability", "busy", "--overlay", str(overlay))
    assert str(result["output"]).splitlines()[0] == "dnd"


def test_mapping_explain_still_answers() -> None:
    result = _run("mapping", "explain", "--availability", "Busy", "--activity", "InACall")
    assert str(result["output"]).splitlines()[0] == "on-the-phone"
