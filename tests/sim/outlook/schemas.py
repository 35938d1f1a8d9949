"""Validation of the simulator's answers against tests/fixtures' Graph schemas."""

from __future__ import annotations

from typing import Any

from tests.sim.schemas import FIXTURES, fixture, validator


def check_collection(body: dict[str, Any], item_schema: str) -> None:
    """The collection wrapper, then every item against its type."""
    validator("types/collection.json").validate(body)
    for item in body["value"]:
        validator(item_schema).validate(item)


def shape(value: Any) -> Any:
    """A value's structure (keys and JSON types), for comparing with a fixture."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


__all__ = ["FIXTURES", "check_collection", "fixture", "shape", "validator"]
