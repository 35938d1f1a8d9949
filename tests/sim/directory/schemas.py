"""Directory answers checked against Graph's schemas."""

from __future__ import annotations

from typing import Any

from tests.sim.schemas import FIXTURES, fixture, validator

__all__ = ["FIXTURES", "check_error", "check_user_collection", "fixture", "validator"]


def check_user_collection(body: dict[str, Any], *, strict: bool = False) -> None:
    """Validate a users collection answer: the wrapper and each user."""
    validator("types/collection.json").validate(body)
    item = validator("types-strict/user.json" if strict else "types/user.json")
    for user in body["value"]:
        item.validate(user)


def check_error(body: dict[str, Any]) -> None:
    """Validate a Graph error body."""
    validator("types/odata-error.json").validate(body)
