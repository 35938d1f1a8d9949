"""Events and contacts from scenario entries and control-API bodies.

Keys may be written in snake_case (`show_as`, `start_in`) or as Graph names them
(`showAs`, `isAllDay`); matching ignores case and underscores. Times are ISO-8601 (with an
offset, or wall-clock in the event's `time_zone`), a Graph `dateTimeTimeZone` object, or
relative to the simulator's clock: `start_in: 30m` plus `duration: 1h`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from m365sim.errors import GraphError
from m365sim.outlook.model import SENSITIVITY, SHOW_AS, EmailAddress, Recurrence
from m365sim.outlook.recurrence import validate
from m365sim.outlook.timezones import parse_date_time_time_zone, resolve_zone, to_utc

DEFAULT_DURATION = timedelta(minutes=30)
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*d)?\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*"
                       r"(?:(\d+(?:\.\d+)?)\s*m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$", re.I)
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$",
                           re.I)


class SpecError(ValueError):
    """An entry that cannot become an event or contact; the message names the bad key."""


def normalise(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Keys folded (case and underscores ignored), so `show_as` and `showAs` are one key."""
    if not isinstance(spec, Mapping):
        raise SpecError("an entry must be a mapping")
    return {str(k).casefold().replace("_", ""): v for k, v in spec.items()}


def pick(spec: Mapping[str, Any], *names: str) -> Any:
    """The first of several alias keys present in a normalised spec."""
    for name in names:
        if name in spec:
            return spec[name]
    return None


def parse_duration(value: Any, what: str) -> timedelta:
    """'90s', '30m', '1h30m', '2d', ISO 'PT1H', or a number of seconds."""
    if isinstance(value, bool):
        raise SpecError(f"{what}: {value!r} is not a duration")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = str(value).strip()
    iso = _ISO_DURATION.match(text)
    if iso and any(iso.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in iso.groups())
        return timedelta(days=d, hours=h, minutes=m, seconds=s)
    short = _DURATION.match(text)
    if text and short and any(short.groups()):
        d, h, m, s = (float(g) if g else 0.0 for g in short.groups())
        return timedelta(days=d, hours=h, minutes=m, seconds=s)
    raise SpecError(f"{what}: {value!r} is not a duration (e.g. 30m, 1h, PT1H)")


def _moment(value: Any, zone_name: str, what: str) -> tuple[datetime, str]:
    if isinstance(value, Mapping):
        try:
            return parse_date_time_time_zone(dict(value), what)
        except GraphError as exc:
            raise SpecError(f"{what}: {exc.message}") from None
    if isinstance(value, datetime):
        return to_utc(value, resolve_zone(zone_name)), zone_name
    if isinstance(value, date):
        return to_utc(datetime.combine(value, time()), resolve_zone(zone_name)), zone_name
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise SpecError(f"{what}: {value!r} is not an ISO-8601 date and time") from None
    return to_utc(parsed, resolve_zone(zone_name)), zone_name


def _flag(spec: Mapping[str, Any], default: bool, *names: str) -> bool:
    value = pick(spec, *names)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(f"{names[0]}: expected true or false, got {value!r}")
    return value


def _choice(value: Any, allowed: tuple[str, ...], what: str, default: str) -> str:
    if value is None:
        return default
    folded = {a.casefold(): a for a in allowed}
    found = folded.get(str(value).casefold())
    if found is None:
        raise SpecError(f"{what}: {value!r} is not one of {', '.join(allowed)}")
    return found


def event_times(spec: Mapping[str, Any], *, now: datetime, default_zone: str,
                all_day: bool) -> tuple[datetime, datetime, str]:
    """(start, end, zone) of a normalised event spec."""
    zone_name = str(pick(spec, "timezone", "zone") or default_zone)
    try:
        zone = resolve_zone(zone_name)
    except GraphError as exc:
        raise SpecError(f"time_zone: {exc.message}") from None
    start_in, raw_start = pick(spec, "startin"), pick(spec, "start")
    if start_in is not None and raw_start is not None:
        raise SpecError("give either start or start_in, not both")
    if start_in is not None:
        start = now + parse_duration(start_in, "start_in")
    elif raw_start is not None:
        start, zone_name = _moment(raw_start, zone_name, "start")
        zone = resolve_zone(zone_name)
    else:
        raise SpecError("an event needs start (ISO time) or start_in (e.g. 30m)")
    raw_end, duration = pick(spec, "end"), pick(spec, "duration")
    if raw_end is not None and duration is not None:
        raise SpecError("give either end or duration, not both")
    if all_day:
        first = start.astimezone(zone).date() if start_in is not None else _local_date(
            start, zone)
        if raw_end is not None:
            end = _moment(raw_end, zone_name, "end")[0]
            _local_date(end, zone)
        else:
            days = parse_duration(duration, "duration").days if duration is not None else 1
            end = to_utc(datetime.combine(first + timedelta(days=max(days, 1)), time()), zone)
        start = to_utc(datetime.combine(first, time()), zone)
    elif raw_end is not None:
        end = _moment(raw_end, zone_name, "end")[0]
    else:
        end = start + (parse_duration(duration, "duration") if duration is not None
                       else DEFAULT_DURATION)
    if end < start:
        raise SpecError("end is before start")
    if all_day and end == start:
        raise SpecError("an all-day event lasts at least one day")
    return start, end, zone_name


def _local_date(moment: datetime, zone: Any) -> date:
    local = moment.astimezone(zone)
    if local.time() != time():
        raise SpecError("an all-day event starts and ends at midnight in its time zone")
    return local.date()


def event_options(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The event fields other than times and organizer, validated."""
    location = pick(spec, "location")
    if isinstance(location, Mapping):
        location = normalise(location).get("displayname")
    body = pick(spec, "body")
    if isinstance(body, Mapping):
        body = normalise(body).get("content")
    return {
        "subject": str(pick(spec, "subject") or "Meeting"),
        "show_as": _choice(pick(spec, "showas"), SHOW_AS, "show_as", "busy"),
        "sensitivity": _choice(pick(spec, "sensitivity"), SENSITIVITY, "sensitivity", "normal"),
        "importance": _choice(pick(spec, "importance"), ("low", "normal", "high"),
                              "importance", "normal"),
        "is_cancelled": _flag(spec, False, "iscancelled", "cancelled"),
        "is_online_meeting": _flag(spec, False, "isonlinemeeting", "online", "teams"),
        "location": str(location) if location else None,
        "body": str(body or ""),
        "categories": [str(c) for c in pick(spec, "categories") or []],
    }


def is_all_day(spec: Mapping[str, Any]) -> bool:
    """Whether a normalised spec asks for an all-day event."""
    return _flag(spec, False, "isallday", "allday")


def organizer(spec: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, address) of an explicit organizer, or None for the mailbox owner."""
    value = pick(spec, "organizer")
    if value is None:
        return None
    if isinstance(value, str):
        return value.split("@")[0], value
    entry = normalise(value)
    if "emailaddress" in entry:
        entry = normalise(entry["emailaddress"])
    address = entry.get("address")
    if not address:
        raise SpecError("organizer: needs an address")
    return str(entry.get("name") or str(address).split("@")[0]), str(address)


def recurrence(value: Any) -> Recurrence | None:
    """A Recurrence from a short form ({type, interval, days, day, month, index,
    until|count}) or Graph's form."""
    if value is None:
        return None
    spec = normalise(value)
    pattern = normalise(spec.get("pattern") or spec)
    span = normalise(spec.get("range") or spec)
    days = pick(pattern, "daysofweek", "days") or []
    until = pick(span, "enddate", "until")
    count = pick(span, "numberofoccurrences", "count")
    range_type = pick(span, "type") if "range" in spec else None
    if range_type is None:
        range_type = "endDate" if until else "numbered" if count else "noEnd"
    try:
        rule = Recurrence(
            pattern_type=str(pick(pattern, "type") or ""),
            interval=int(pick(pattern, "interval") or 1),
            days_of_week=tuple(str(d).lower() for d in days),
            first_day_of_week=str(pick(pattern, "firstdayofweek") or "sunday").lower(),
            day_of_month=int(pick(pattern, "dayofmonth", "day") or 0),
            month=int(pick(pattern, "month") or 0),
            index=str(pick(pattern, "index") or "first").lower(),
            range_type=str(range_type),
            start_date=_date(pick(span, "startdate")),
            end_date=_date(until),
            number_of_occurrences=int(count or 0),
        )
    except (TypeError, ValueError):
        raise SpecError(f"recurrence: cannot read {value!r}") from None
    problem = validate(rule)
    if problem:
        raise SpecError(f"recurrence: {problem}")
    return rule


def _date(value: Any) -> date | None:
    if value is None or value == "0001-01-01":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise SpecError(f"{what}: expected a list of strings")
    return [str(v) for v in value]


def _emails(value: Any) -> list[EmailAddress]:
    found = []
    for entry in value if isinstance(value, list) else [value] if value else []:
        if isinstance(entry, str):
            found.append(EmailAddress(entry))
        else:
            item = normalise(entry)
            if not item.get("address"):
                raise SpecError("email_addresses: each entry needs an address")
            found.append(EmailAddress(str(item["address"]), item.get("name")))
    return found


CONTACT_TEXT = {"display_name": ("displayname", "name"), "given_name": ("givenname",),
                "surname": ("surname",), "middle_name": ("middlename",),
                "nick_name": ("nickname",), "company_name": ("companyname", "company"),
                "department": ("department",), "job_title": ("jobtitle",),
                "office_location": ("officelocation",), "mobile_phone": ("mobilephone",),
                "personal_notes": ("personalnotes", "notes")}
CONTACT_LISTS = {"business_phones": ("businessphones",), "home_phones": ("homephones",),
                 "im_addresses": ("imaddresses",), "categories": ("categories",)}


def contact_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Contact attributes present in a normalised spec (for create and update)."""
    fields: dict[str, Any] = {}
    for attr, names in CONTACT_TEXT.items():
        if any(n in spec for n in names):
            value = pick(spec, *names)
            fields[attr] = None if value is None else str(value)
    for attr, names in CONTACT_LISTS.items():
        if any(n in spec for n in names):
            fields[attr] = _strings(pick(spec, *names), attr)
    if any(n in spec for n in ("emailaddresses", "emails", "email")):
        fields["email_addresses"] = _emails(pick(spec, "emailaddresses", "emails", "email"))
    return fields
