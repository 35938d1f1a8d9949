"""Durations as people and Microsoft write them: `PT5M`, `P7D`, `90s`, `5m`, `1h30m`, `7d`."""

from __future__ import annotations

import re
from datetime import timedelta

_ISO = re.compile(
    r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_HUMAN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration or a human one; raise ValueError saying what is accepted."""
    value = text.strip()
    iso = _ISO.match(value)
    if iso and value.upper() not in ("P", "PT"):
        parts = {k: float(v) for k, v in iso.groupdict().items() if v is not None}
        return timedelta(
            days=parts.get("days", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
            seconds=parts.get("seconds", 0),
        )
    compact = value.replace(" ", "")
    matches = list(_HUMAN_PART.finditer(compact))
    if matches and "".join(m.group(0) for m in matches) == compact:
        total = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()] for m in matches)
        return timedelta(seconds=total)
    raise ValueError(
        f"{text!r} is not a duration; use ISO-8601 (PT5M, P7D) or a number with a unit "
        "(90s, 5m, 1h30m, 7d)"
    )


def iso_duration(value: timedelta) -> str:
    """Format a duration in ISO-8601 as Graph expects it (`PT15M`, `P7D`, `PT1H30M`)."""
    seconds = int(value.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    date_part = f"{days}D" if days else ""
    time_part = "".join(
        f"{count}{unit}" for count, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if count
    )
    if not date_part and not time_part:
        return "PT0S"
    return "P" + date_part + ("T" + time_part if time_part else "")


def format_duration(value: timedelta) -> str:
    """Format a duration the short human way: `1h`, `1h30m`, `7d`, `90s` → `1m30s`."""
    total = value.total_seconds()
    whole = int(total)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    seconds = whole + (total - int(total))
    if seconds or not parts:
        parts.append(f"{seconds:g}s")
    return "".join(parts)
