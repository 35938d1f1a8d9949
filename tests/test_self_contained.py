"""The repository is whole on its own: nothing it runs or documents reads the design shelf.

A clone of the repository has nothing beside it (only our machines hold the design notes):
tests that read schemas or payloads from there failed on a fresh clone. Data the project
needs lives in tests/fixtures and docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Spelled in pieces so that this file does not match itself.
_SHELF = "".join(["sha", "red"])
FORBIDDEN = re.compile(
    r"\.\./" + _SHELF + r"\b|/work/" + _SHELF + r"\b|\b" + _SHELF
    + r"/(reference|design\.md|fixtures|graph-schema|hooks)"
)
CHECKED = ["src", "tests", "docs", "bench", ".ci", "Makefile", "README.md", "pyproject.toml"]
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".xml", ".json",
                 ".csv", ".txt", ".mako", ""}


def _files() -> list[Path]:
    found: list[Path] = []
    for name in CHECKED:
        path = ROOT / name
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
                      and "__pycache__" not in p.parts]
    return found


def test_nothing_in_the_repository_refers_to_the_design_shelf_beside_it() -> None:
    offenders = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_graph_schemas_and_payloads_the_tests_use_are_in_the_repository() -> None:
    fixtures = ROOT / "tests" / "fixtures"
    assert (fixtures / "graph-schema" / "types" / "odata-error.json").is_file()
    assert (fixtures / "graph-schema" / "actions" / "setPresence.request.json").is_file()
    assert len(list((fixtures / "graph").glob("*.json"))) >= 40
    assert (ROOT / "docs" / "mapping.md").is_file()
