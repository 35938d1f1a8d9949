"""Configuration problems: where each one is (file, line, key path) and what was expected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from m365pbx.errors import UserInputError

KeyPath = tuple[str | int, ...]
"""A key path into the configuration document, e.g. ("tenants", 0, "name")."""


def format_path(path: KeyPath) -> str:
    """Render a key path as `tenants[0].credentials[1].client_id`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the configuration; never holds a secret value."""

    message: str
    path: str = ""
    source: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = [self.source or "", str(self.line or ""), str(self.column or "")]
        prefix = ":".join(part for part in where if part)
        body = f"{self.path}: {self.message}" if self.path else self.message
        return f"{prefix}: {body}" if prefix else body


class ConfigError(UserInputError):
    """The configuration cannot be used; `problems` lists every problem found, in file order."""

    def __init__(
        self,
        problems: Sequence[Problem],
        *,
        source: str | None = None,
        warnings: Sequence[str] = (),
    ):
        if not problems:
            raise ValueError("a ConfigError needs at least one problem")
        self.problems = list(problems)
        self.warnings = list(warnings)
        if len(self.problems) == 1:
            message = str(self.problems[0])
        else:
            listed = "\n".join(f"  {problem}" for problem in self.problems)
            where = f" in {source}" if source else ""
            message = f"{len(self.problems)} problems{where}:\n{listed}"
        super().__init__(message)
