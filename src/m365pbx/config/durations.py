"""Durations in the configuration: ISO-8601 (`PT5M`, `P7D`) or human (`90s`, `5m`, `1h`, `7d`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from m365pbx.core.durations import format_duration as format_duration
from m365pbx.core.durations import parse_duration as _parse_core

_BARE_NUMBER = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse a positive duration; raise ValueError saying what is accepted."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("expected a duration such as '90s', '5m', '1h', '7d' or 'PT5M'")
    elif isinstance(value, (int, float)) or _BARE_NUMBER.match(value):
        # A bare number is ambiguous (seconds? minutes?): ask for the unit instead of guessing.
        number = str(value).strip()
        raise ValueError(f"{number} has no unit; write '{number}s' or use m, h, d (e.g. '5m')")
    elif _has_calendar_units(value):
        raise ValueError("years and months have no fixed length; give days instead (e.g. 'P30D')")
    else:
        result = _parse_core(value)
    if result <= timedelta(0):
        raise ValueError("a duration must be longer than zero")
    return result


def _has_calendar_units(text: str) -> bool:
    upper = text.strip().upper()
    date_part = upper[1:].partition("T")[0] if upper.startswith("P") else ""
    return "Y" in date_part or "M" in date_part


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A positive duration field that accepts `PT5M`, `P7D`, `90s`, `5m`, `1h30m` or `7d`."""
