"""graph/, store/ and sync/ have explicit public names, and the rest of m365pbx uses only
those (or the submodules each package names in PUBLIC_MODULES); sync/ and graph/ keep to
their layers (design.md "Layout", rules 2 and 3)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "m365pbx"
PACKAGES = ("graph", "store", "sync")
# What each layer must never import (design.md rule 2: protocol code knows nothing of the
# store, the configuration or the web layer; sync/ reaches the store only through ports).
FORBIDDEN = {
    "graph": ("m365pbx.store", "m365pbx.config", "m365pbx.web", "m365pbx.service",
              "m365pbx.sync", "m365pbx.app"),
    "sync": ("m365pbx.store", "m365pbx.web", "m365pbx.service", "m365pbx.app"),
}


def module_name(path: Path) -> str:
    """The dotted name of a source file under src/."""
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(
        ".__init__")


def imports(source: str) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in `source` (names empty for `import x`)."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def is_public_module(sub: str, listed: tuple[str, ...]) -> bool:
    """Whether `sub` is listed, or lies in a subpackage listed as "name.*"."""
    return sub in listed or any(
        entry.endswith(".*") and sub.startswith(entry[:-1]) for entry in listed)


def misuses(source: str, importer: str) -> list[str]:
    """Imports in `source` (of module `importer`) that reach past a package's public names."""
    problems = []
    for module, names in imports(source):
        for package in PACKAGES:
            base = f"m365pbx.{package}"
            if importer == base or importer.startswith(base + "."):
                continue
            public = importlib.import_module(base)
            if module == base:
                problems += [f"{importer}: {base}.{n} is not in __all__"
                             for n in names if n not in public.__all__]
            elif module.startswith(base + "."):
                sub = module.removeprefix(base + ".")
                if not is_public_module(sub, public.PUBLIC_MODULES):
                    problems.append(f"{importer}: {module} is not in {base}.PUBLIC_MODULES")
                problems += [f"{importer}: {module}.{n} is private"
                             for n in names if n.startswith("_")]
    return problems


def sources() -> list[Path]:
    """Every module of m365pbx."""
    return sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_and_module_imports(package: str) -> None:
    public = importlib.import_module(f"m365pbx.{package}")
    assert len(set(public.__all__)) == len(public.__all__)
    for name in public.__all__:
        assert getattr(public, name) is not None, name
    for sub in public.PUBLIC_MODULES:
        importlib.import_module(f"m365pbx.{package}.{sub.removesuffix('.*')}")


def test_outside_modules_use_only_public_names() -> None:
    problems = [p for path in sources()
                for p in misuses(path.read_text(encoding="utf-8"), module_name(path))]
    assert problems == []


def test_the_guard_notices_a_private_import() -> None:
    source = ("from m365pbx.store.repositories._common import assign\n"
              "from m365pbx.graph import NoSuchName\n"
              "from m365pbx.sync.hub import _private\n")
    problems = misuses(source, "m365pbx.service.example")
    assert len(problems) == 3, problems
    assert is_public_module("calendar.reader", ("calendar.*",))
    assert not is_public_module("calendarx", ("calendar.*",))
    assert misuses(source, "m365pbx.store.example") == [
        "m365pbx.store.example: m365pbx.graph.NoSuchName is not in __all__",
        "m365pbx.store.example: m365pbx.sync.hub._private is private"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_keep_to_themselves(package: str) -> None:
    problems = []
    for path in sorted((SRC / package).rglob("*.py")):
        for module, _ in imports(path.read_text(encoding="utf-8")):
            problems += [f"{module_name(path)} imports {module}" for layer in FORBIDDEN[package]
                         if module == layer or module.startswith(layer + ".")]
    assert problems == []


def test_a_missing_public_name_raises_attribute_error() -> None:
    graph = importlib.import_module("m365pbx.graph")
    with pytest.raises(AttributeError, match="NoSuchName"):
        _ = graph.NoSuchName
