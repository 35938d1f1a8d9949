"""Every command's help names what an option takes in words, and `--version` answers."""

from __future__ import annotations

import re

import typer.main
from typer.testing import CliRunner

from m365pbx import __version__
from m365pbx.cli.app import app

PYTHON_TYPE = re.compile(r"<(?:list\[|bool|str|int|float|Path|path|file|directory|datetime)")


def _command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_no_help_text_shows_a_python_type(cli: CliRunner) -> None:
    paths = _command_paths()
    assert ["db", "backup"] in paths and ["secrets", "rotate"] in paths
    for path in paths:
        result = cli.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        shown = PYTHON_TYPE.findall(result.output)
        assert not shown, f"m365pbx {' '.join(path)} --help shows {shown}:\n{result.output}"


def test_options_are_named_in_words(cli: CliRunner) -> None:
    result = cli.invoke(app, ["match", "--help"], env={"COLUMNS": "200"})
    lines = {line.split()[0]: line for line in result.output.splitlines()
             if line.strip().startswith("--")}
    assert re.search(r"--encoding TEXT\s", lines["--encoding"])
    assert re.search(r"--teams FILE\s", lines["--teams"])
    assert re.search(r"--format table\|json\|csv\s", lines["--format"])
    assert re.search(r"--strip-domain\s+Compare", lines["--strip-domain"])  # a flag takes none


def test_the_list_of_commands_shows_whole_summaries(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--help"], env={"COLUMNS": "80"})
    commands = result.output.split("Commands:")[1]
    assert "..." not in commands
    assert "and people acting." in commands


def test_version(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"m365pbx {__version__}\n"
