"""Presence answers checked against Graph's schemas."""

from __future__ import annotations

from typing import Any

from tests.sim.schemas import FIXTURES, fixture, validator

__all__ = ["FIXTURES", "check_presence", "fixture", "validator"]


def check_presence(body: dict[str, Any], *, strict: bool = True) -> None:
    """Validate a presence answer (strict: no property Graph's metadata lacks)."""
    validator("types/presence.json").validate(body)
    if strict:
        validator("types-strict/presence.json").validate(body)
