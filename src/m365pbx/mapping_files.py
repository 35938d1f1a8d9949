"""Reading and writing mapping documents as YAML or JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from m365pbx.core.mapping import MappingError, MappingOverlay, parse_mapping_overlay
from m365pbx.errors import UserInputError


def read_document(path: Path) -> Any:
    """Load a YAML or JSON file; syntax errors name the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError("file not found", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})", source=str(path)
        ) from None
    except OSError as exc:
        raise UserInputError(f"cannot read: {exc.strerror}", source=str(path)) from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserInputError(
                f"invalid JSON: {exc.msg}", source=str(path), location=f"line {exc.lineno}"
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        location = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise UserInputError(
            f"invalid YAML: {exc.problem or exc}", source=str(path), location=location
        ) from None
    except yaml.YAMLError as exc:
        raise UserInputError(f"invalid YAML: {exc}", source=str(path)) from None


def load_overlay(path: Path) -> MappingOverlay:
    """Read a mapping file into an overlay; every problem is named in the error."""
    data = read_document(path)
    try:
        return parse_mapping_overlay(data, source=str(path))
    except MappingError as exc:
        raise UserInputError(
            "invalid mapping:\n  " + "\n  ".join(exc.problems), source=str(path)
        ) from None


def dump_document(data: dict[str, Any], path: Path | None) -> str:
    """Render a mapping document as YAML (JSON when `path` ends in .json)."""
    if path is not None and path.suffix.lower() == ".json":
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
