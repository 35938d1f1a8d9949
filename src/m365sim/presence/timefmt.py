"""Times as the presence part keeps and shows them.

Internally every instant is an integer count of microseconds since the Unix epoch, so
deadlines compare exactly and sleeping on the virtual clock lands on them to the
microsecond. Graph shows DateTimeOffset values with seven fractional digits and `Z`,
and `dateTimeTimeZone.dateTime` without an offset (graph.md 3.1).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_DAY = 24 * 60 * US_PER_MINUTE


def to_us(when: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact)."""
    return (when - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a microsecond count."""
    return EPOCH + timedelta(microseconds=us)


def graph_instant(us: int) -> str:
    """A DateTimeOffset the way Graph writes it: `2024-05-01T09:00:00.0000000Z`."""
    when = from_us(us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0Z"


def graph_local(us: int) -> str:
    """A `dateTimeTimeZone.dateTime` in UTC: `2024-05-01T17:00:00.0000000` (no offset)."""
    when = from_us(us)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}0"


# xs:dayTimeDuration, which is what Edm.Duration carries: days, hours, minutes, seconds.
# Years and months have no fixed length, so Graph's duration parameters cannot use them.
_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d{1,7})?)S)?)?"
)


def parse_duration_us(text: str) -> int | None:
    """An ISO-8601 duration such as `PT1H` or `P1DT2H` in microseconds, None if malformed."""
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = match.groupdict()
    seconds = float(parts["seconds"] or 0)
    total = timedelta(
        weeks=int(parts["weeks"] or 0),
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=seconds,
    )
    return total // MICROSECOND


# Windows time zone ids that Graph accepts in dateTimeTimeZone (Outlook's vocabulary),
# mapped to IANA ids (CLDR windowsZones "001" territory). IANA ids are accepted as well.
WINDOWS_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "Coordinated Universal Time": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "Romance Standard Time": "Europe/Paris",
    "E. Europe Standard Time": "Europe/Chisinau",
    "FLE Standard Time": "Europe/Kiev",
    "GTB Standard Time": "Europe/Bucharest",
    "Russian Standard Time": "Europe/Moscow",
    "Turkey Standard Time": "Europe/Istanbul",
    "Israel Standard Time": "Asia/Jerusalem",
    "South Africa Standard Time": "Africa/Johannesburg",
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
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Atlantic Standard Time": "America/Halifax",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "E. South America Standard Time": "America/Sao_Paulo",
    "Argentina Standard Time": "America/Buenos_Aires",
    "Pacific SA Standard Time": "America/Santiago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
}

_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?")


def parse_date_time_zone(date_time: str, time_zone: str) -> int | None:
    """The instant of a Graph `dateTimeTimeZone` in microseconds, None if either part is bad.

    `dateTime` has no offset (a trailing `Z` is tolerated for UTC); fractions beyond
    microseconds (Graph writes seven digits) are cut.
    """
    text = date_time[:-1] if date_time.endswith("Z") and time_zone in ("UTC", "Etc/UTC") else (
        date_time)
    if _LOCAL.fullmatch(text) is None:
        return None
    head, _, fraction = text.partition(".")
    try:
        naive = datetime.fromisoformat(head)
    except ValueError:
        return None
    zone_name = WINDOWS_ZONES.get(time_zone, time_zone)
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
    micro = int((fraction + "000000")[:6]) if fraction else 0
    return to_us(naive.replace(tzinfo=zone)) + micro
