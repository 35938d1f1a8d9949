"""Calendar reads: one person's events of a window through calendarView (graph.md 6)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from m365pbx.core.calendar import CalendarEvent
from m365pbx.graph.client import GraphClient

log = logging.getLogger(__name__)

# Only what the selection reads (core/calendar.py): the rest of an event (body, attendees)
# is most of its size.
EVENT_FIELDS = ("id", "subject", "start", "end", "showAs", "isAllDay", "isCancelled",
                "responseStatus", "sensitivity")
# calendarView's pages are small unless asked (Outlook's default is 10 items).
PAGE_SIZE = "100"
# Every returned start and end in UTC: no Windows zone names to convert.
PREFER_UTC = 'outlook.timezone="UTC"'


class EventTimeUnreadable(ValueError):
    """An event's start or end could not be read as a time."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float:
    """POSIX seconds from a Graph dateTimeTimeZone (UTC when asked; IANA names read too)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise EventTimeUnreadable(f"not a dateTimeTimeZone: {value!r}")
    try:
        moment = datetime.fromisoformat(value["dateTime"])
    except ValueError:
        raise EventTimeUnreadable(f"not a date and time: {value['dateTime']!r}") from None
    if moment.tzinfo is None:
        zone_name = str(value.get("timeZone") or "UTC")
        if zone_name.upper() in ("UTC", "ETC/UTC", "Z"):
            zone: Any = UTC
        else:
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                # Windows names come only when Graph ignored our Prefer header.
                raise EventTimeUnreadable(f"unknown time zone {zone_name!r}") from None
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def parse_event(data: dict[str, Any]) -> CalendarEvent:
    """A CalendarEvent from calendarView's JSON; raises EventTimeUnreadable for bad times."""
    response = data.get("responseStatus")
    return CalendarEvent(
        id=str(data.get("id") or ""),
        subject=str(data.get("subject") or ""),
        start=parse_time(data.get("start")),
        end=parse_time(data.get("end")),
        show_as=str(data.get("showAs") or "unknown"),
        is_all_day=bool(data.get("isAllDay")),
        is_cancelled=bool(data.get("isCancelled")),
        response=str(response.get("response") or "none") if isinstance(response, dict)
        else "none",
        sensitivity=str(data.get("sensitivity") or "normal"),
    )


async def calendar_view(client: GraphClient, user_id: str, start: datetime,
                        end: datetime) -> list[CalendarEvent]:
    """The person's events (series expanded) that overlap [start, end), all pages."""
    params = {"startDateTime": _iso(start), "endDateTime": _iso(end),
              "$select": ",".join(EVENT_FIELDS), "$top": PAGE_SIZE}
    headers = {"Prefer": PREFER_UTC}
    events: list[CalendarEvent] = []
    async for page in client.pages(f"/v1.0/users/{user_id}/calendarView", params=params,
                                   headers=headers):
        for item in page.get("value") or ():
            if not isinstance(item, dict):
                continue
            try:
                events.append(parse_event(item))
            except EventTimeUnreadable as exc:
                # One unreadable event must not hide the rest of the calendar.
                log.warning("calendar event skipped", extra={"user": user_id,
                                                             "reason": str(exc)})
    return events
