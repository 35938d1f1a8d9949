"""Environment overrides: `M365PBX_LISTEN__PORT=9000` wins over `listen: port:` in the file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsError

from m365pbx.config.errors import KeyPath, Problem

CONFIG_ENV_VAR = "M365PBX_CONFIG"
SECRET_KEY_ENV_VAR = "M365PBX_SECRET_KEY"  # noqa: S105 - a variable name, not a secret
# Read by other parts of m365pbx, not settings fields: never reported as unknown.
_OTHER_KNOWN = frozenset({CONFIG_ENV_VAR, SECRET_KEY_ENV_VAR})


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # What pydantic-settings does with os.environ, done here on the given mapping (its own
        # helper for it lives in a private module that moves between releases).
        loaded: dict[str, str | None] = {}
        for name, value in self._given.items():
            if self.env_ignore_empty and value == "":
                continue
            key = name if self.case_sensitive else name.lower()
            loaded[key] = None if value == self.env_parse_none_str else value
        return loaded


@dataclass(slots=True)
class Overrides:
    """What the environment overrides, which variable set each path, and what looks wrong."""

    data: dict[str, Any] = field(default_factory=dict)
    variables: dict[tuple[str, ...], str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def variable_for(self, path: KeyPath, *, below: bool = False) -> str | None:
        """Return the variable that set this path or a parent (or, if `below`, a child) of it."""
        folded = tuple(str(part).lower() for part in path)
        for length in range(len(folded), 0, -1):
            if (name := self.variables.get(folded[:length])) is not None:
                return name
        # A problem with a whole item that only the environment mentions (TENANTS__3__NAME).
        children = [name for key, name in self.variables.items() if key[: len(folded)] == folded]
        return children[0] if below and folded and children else None


def read_overrides(settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> Overrides:
    """Collect the `M365PBX_…` variables that override settings of `settings_cls`."""
    config = settings_cls.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    fields = set(settings_cls.model_fields)
    overrides = Overrides()
    for name in environ:
        upper = name.upper()
        if not upper.startswith(prefix) or upper in _OTHER_KNOWN:
            continue
        path = tuple(upper[len(prefix) :].lower().split(delimiter))
        if path[0] in fields:
            overrides.variables[path] = name
        else:
            overrides.warnings.append(_unknown_variable(name, settings_cls, prefix, delimiter))
    try:
        overrides.data = _GivenEnvironment(settings_cls, environ)()
    except SettingsError as exc:
        overrides.problems.append(_parse_problem(str(exc), prefix))
    return overrides


def merge(base: Any, override: Any, path: KeyPath = ()) -> tuple[Any, list[tuple[KeyPath, str]]]:
    """Lay `override` over `base`: mappings merge, `{"0": ...}` amends list item 0, else replace."""
    problems: list[tuple[KeyPath, str]] = []
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            if key in merged:
                merged[key], found = merge(merged[key], value, (*path, key))
                problems.extend(found)
            else:
                merged[key] = value
        return merged, problems
    if isinstance(override, dict) and override and all(str(k).isdigit() for k in override):
        items = list(base) if isinstance(base, list) else []
        for key, value in override.items():
            index = int(key)
            if index >= len(items):
                problems.append(
                    ((*path, index), f"the file declares {len(items)} item(s) here, so there "
                     f"is no item {index} to override")
                )
                continue
            items[index], found = merge(items[index], value, (*path, index))
            problems.extend(found)
        return items, problems
    return override, problems


def _unknown_variable(
    name: str, settings_cls: type[BaseSettings], prefix: str, delimiter: str
) -> str:
    known = sorted(_OTHER_KNOWN | _simple_variables(settings_cls, prefix, delimiter))
    close = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"environment variable {name} is not a setting and is ignored{hint}"


def _simple_variables(settings_cls: type[BaseSettings], prefix: str, delimiter: str) -> set[str]:
    names = set()
    for name, info in settings_cls.model_fields.items():
        names.add(f"{prefix}{name.upper()}")
        annotation = info.annotation
        sub_fields = getattr(annotation, "model_fields", None)
        if isinstance(sub_fields, dict):
            names.update(f"{prefix}{name.upper()}{delimiter}{sub.upper()}" for sub in sub_fields)
    return names


def _parse_problem(text: str, prefix: str) -> Problem:
    match = re.search(r'field "(\w+)"', text)
    if match is None:
        return Problem(f"cannot read the environment overrides: {text}")
    name = match.group(1)
    return Problem(
        f"expected JSON here (e.g. {{\"port\": 8080}}); to set one key, use "
        f"{prefix}{name.upper()}__KEY=value instead",
        source=f"environment variable {prefix}{name.upper()}",
    )
