"""Time zones as Outlook names them: Windows ids and IANA names, and `dateTimeTimeZone` values.

Graph's `dateTimeTimeZone` carries a wall-clock time without offset plus a zone name;
Outlook accepts Windows zone ids ("W. Europe Standard Time") and IANA names
("Europe/Berlin") there and in `Prefer: outlook.timezone` (graph.md 6;
api-reference/v1.0/resources/datetimetimezone.md). The table maps the Windows ids in
common use to their IANA zone (CLDR windowsZones, territory "001").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from m365sim.errors import GraphError

WINDOWS_TO_IANA: dict[str, str] = {
    "UTC": "Etc/UTC",
    "Coordinated Universal Time": "Etc/UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Egypt Standard Time": "Africa/Cairo",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Calcutta",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "E. Australia Standard Time": "Australia/Brisbane",
    "W. Australia Standard Time": "Australia/Perth",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Central Standard Time": "America/Chicago",
    "Eastern Standard Time": "America/New_York",
    "Atlantic Standard Time": "America/Halifax",
    "Newfoundland Standard Time": "America/St_Johns",
    "Canada Central Standard Time": "America/Regina",
    "Central America Standard Time": "America/Guatemala",
    "Mexico Standard Time": "America/Mexico_City",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "SA Pacific Standard Time": "America/Bogota",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
}

_WINDOWS_BY_FOLDED = {name.casefold(): iana for name, iana in WINDOWS_TO_IANA.items()}


def unsupported_zone(name: str) -> GraphError:
    """Outlook's answer to a zone name it does not know (observed text, unconfirmed in docs)."""
    return GraphError(400, "TimeZoneNotSupportedException",
                      "A valid TimeZone value must be specified. The following TimeZone value "
                      f"is not supported: '{name}'.")


def resolve_zone(name: str) -> tzinfo:
    """The zone for a Windows id or IANA name; GraphError 400 for an unknown one."""
    cleaned = name.strip()
    if not cleaned:
        raise unsupported_zone(name)
    iana = _WINDOWS_BY_FOLDED.get(cleaned.casefold(), cleaned)
    if iana in ("Etc/UTC", "UTC"):
        return UTC
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError):
        raise unsupported_zone(name) from None


def is_known_zone(name: str) -> bool:
    """Whether `resolve_zone` accepts the name."""
    try:
        resolve_zone(name)
    except GraphError:
        return False
    return True


def to_utc(local: datetime, zone: tzinfo) -> datetime:
    """A naive wall-clock time in `zone` (or an aware time) as an aware UTC instant."""
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def graph_wall_clock(moment: datetime) -> str:
    """Graph's `dateTime` text: seven fractional digits, no offset."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0"


def date_time_time_zone(moment: datetime, zone_name: str) -> dict[str, str]:
    """An instant as a `dateTimeTimeZone` in the named zone."""
    local = moment.astimezone(resolve_zone(zone_name))
    return {"dateTime": graph_wall_clock(local), "timeZone": zone_name}


def floating_date(day: date, zone_name: str) -> dict[str, str]:
    """Midnight of `day` shown in the named zone: how all-day events are rendered."""
    return {"dateTime": graph_wall_clock(datetime.combine(day, time())), "timeZone": zone_name}


def parse_date_time_time_zone(value: Any, what: str) -> tuple[datetime, str]:
    """Parse a `dateTimeTimeZone` body value into (aware UTC instant, zone name)."""
    if not isinstance(value, dict):
        raise GraphError(400, "ErrorInvalidRequest",
                         f"'{what}' must be a dateTimeTimeZone object.")
    lowered = {str(k).casefold(): v for k, v in value.items()}
    text, zone_name = lowered.get("datetime"), lowered.get("timezone")
    if not isinstance(text, str) or not isinstance(zone_name, str):
        raise GraphError(400, "ErrorInvalidRequest",
                         f"'{what}' needs both 'dateTime' and 'timeZone' as strings.")
    zone = resolve_zone(zone_name)
    local = parse_iso(text, what)
    return to_utc(local, zone), zone_name


def parse_iso(text: str, what: str) -> datetime:
    """An ISO-8601 date-time (naive or with an offset or 'Z'); GraphError 400 if not one."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise GraphError(400, "ErrorInvalidParameter",
                         f"The value '{text}' of parameter '{what}' is invalid.") from None


def day_start(day: date, zone: tzinfo) -> datetime:
    """The UTC instant at which `day` begins in `zone`."""
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def local_date(moment: datetime, zone: tzinfo) -> date:
    """The calendar date of an instant in `zone`."""
    return moment.astimezone(zone).date()


ONE_DAY = timedelta(days=1)
