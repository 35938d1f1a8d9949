"""Option values that need no conversion skip Typer's pydantic machinery.

Typer (0.29) converts every option value through a pydantic TypeAdapter, built when the
option is first read, even when the value is absent or already the text it should be. The
first one imports pydantic's validators: 100–150 ms of CPU on this kind of machine, most of
`m365pbx mapping explain`'s start-up (goal: under 0.3 s). Absent values, text options, exact
enum choices and paths without checks (whoever opens the file reports what is wrong with it)
are passed through here; every other value goes to Typer's own
conversion, built when first needed. Typer internals are reached through getattr: with a
Typer that lacks them nothing is replaced, and tests/cli/test_startup.py says so.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, get_args


class _PassThrough:
    """Typer's runtime conversion of one parameter, built only for values that need it."""

    def __init__(self, descriptor: Any, build: Any) -> None:
        self._descriptor = descriptor
        self._build = build
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        """Return the value as the command function receives it."""
        several = bool(getattr(param, "multiple", False)) or getattr(param, "nargs", 1) == -1
        if value is None:
            return () if several else None
        plain = self._plain(value, several)
        if plain is not None:
            return plain
        if self._typer is None:
            self._typer = self._build(self._descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)

    def _unchecked_path(self) -> bool:
        info = self._descriptor.parameter_info
        return not (getattr(info, "exists", True) or getattr(info, "resolve_path", True)
                    or getattr(info, "writable", True) or getattr(info, "allow_dash", True)
                    or getattr(info, "path_type", None) is not None) and bool(
            getattr(info, "dir_okay", False) and getattr(info, "file_okay", False))

    def _plain(self, value: Any, several: bool) -> Any:
        annotation = self._descriptor.annotation
        if several:
            args = get_args(annotation)
            if args == (str,) and isinstance(value, list | tuple) and all(
                isinstance(item, str) for item in value
            ):
                return list(value)
            return None
        if annotation is str and isinstance(value, str):
            return value
        if annotation is Path and isinstance(value, str) and self._unchecked_path():
            # Nothing to check: whoever opens the file reports what is wrong with it.
            return Path(value)
        if isinstance(annotation, type) and issubclass(annotation, Enum) and isinstance(
            value, str
        ):
            return annotation._value2member_map_.get(value)
        return None


def pass_plain_values(param: Any) -> None:
    """Let `param` take absent, text and exact-choice values without Typer's pydantic step."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", "absent") is not None:
        return
    info = getattr(descriptor, "parameter_info", None)
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None):
        return  # a conversion of the command's own
    try:
        from typer._coercion import build_runtime_param
    except ImportError:  # pragma: no cover - another Typer: keep its conversion
        return
    param._runtime_param = _PassThrough(descriptor, build_runtime_param)
