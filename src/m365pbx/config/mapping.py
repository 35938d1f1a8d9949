"""Per-tenant and per-connection mapping overrides, checked by the mapping module itself."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MAPPING_ERROR_TYPE = "mapping_overlay"
"""The pydantic error type whose `ctx["problems"]` lists the mapping document's problems."""


def check_mapping(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate a mapping override document; keep it as the plain dict the store saves."""
    if value is None:
        return None
    # Imported here: core.mapping is a heavier module and config must import cheaply.
    from m365pbx.core.mapping import MappingError, parse_mapping_overlay

    try:
        parse_mapping_overlay(value, source="configuration")
    except MappingError as exc:
        raise PydanticCustomError(
            MAPPING_ERROR_TYPE,
            "invalid mapping overrides: {summary}",
            {"summary": "; ".join(exc.problems), "problems": list(exc.problems)},
        ) from None
    return value


MappingDocument = Annotated[dict[str, Any] | None, AfterValidator(check_mapping)]
"""Mapping overrides: {teams_to_pbx: [...], pbx_to_teams: [...], replace: false}."""
