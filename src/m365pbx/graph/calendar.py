"""Calendar reads: one person's events of a window through calendarView (graph.md 6), and
their mailbox's automatic replies (api-reference/v1.0/api/user-get-mailboxsettings.md)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from m365pbx.core.calendar import AutomaticReplies, CalendarEvent
from m365pbx.graph.client import GraphClient
from m365pbx.graph.timezones import zone_for

log = logging.getLogger(__name__)

# Only what the selection reads (core/calendar.py): the rest of an event (body, attendees)
# is most of its size.
EVENT_FIELDS = ("id", "subject", "start", "end", "showAs", "isAllDay", "isCancelled",
                "responseStatus", "sensitivity", "originalStartTimeZone")
# calendarView's pages are small unless asked (Outlook's default is 10 items).
PAGE_SIZE = "100"
# Every returned start and end in UTC: no Windows zone names to convert.
PREFER_UTC = 'outlook.timezone="UTC"'


class EventTimeUnreadable(ValueError):
    """An event's start or end could not be read as a time."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wall_clock(value: Any) -> datetime:
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise EventTimeUnreadable(f"not a dateTimeTimeZone: {value!r}")
    try:
        return datetime.fromisoformat(value["dateTime"])
    except ValueError:
        raise EventTimeUnreadable(f"not a date and time: {value['dateTime']!r}") from None


def parse_time(value: Any, zone_name: str | None = None) -> float:
    """POSIX seconds from a Graph dateTimeTimeZone (UTC when asked; Windows, IANA names too).

    `zone_name` overrides the value's own zone: an all-day event's midnights are those of
    the zone it was made in, whatever zone the answer was asked in.
    """
    moment = _wall_clock(value)
    if zone_name is not None:
        moment = moment.replace(tzinfo=None)
    if moment.tzinfo is None:
        name = zone_name if zone_name is not None else str(value.get("timeZone") or "UTC")
        zone = zone_for(name)
        if zone is None:
            raise EventTimeUnreadable(f"unknown time zone {name!r}")
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def parse_event(data: dict[str, Any]) -> CalendarEvent:
    """A CalendarEvent from calendarView's JSON; raises EventTimeUnreadable for bad times."""
    response = data.get("responseStatus")
    all_day = bool(data.get("isAllDay"))
    # An all-day event is midnight to midnight where it was made (a holiday in Berlin
    # begins at 00:00 Berlin time); its start and end come at midnight of the asked zone.
    own_zone = str(data.get("originalStartTimeZone") or "") if all_day else ""
    zone = own_zone if own_zone and zone_for(own_zone) is not None else None
    return CalendarEvent(
        id=str(data.get("id") or ""),
        subject=str(data.get("subject") or ""),
        start=parse_time(data.get("start"), zone),
        end=parse_time(data.get("end"), zone),
        show_as=str(data.get("showAs") or "unknown"),
        is_all_day=all_day,
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


async def automatic_replies(client: GraphClient, user_id: str) -> AutomaticReplies:
    """The person's automatic-reply setting (needs MailboxSettings.Read); an unreadable window
    reads as none."""
    data = await client.get_json(
        f"/v1.0/users/{user_id}/mailboxSettings/automaticRepliesSetting")
    start = end = None
    try:
        if data.get("scheduledStartDateTime") and data.get("scheduledEndDateTime"):
            start = parse_time(data["scheduledStartDateTime"])
            end = parse_time(data["scheduledEndDateTime"])
    except EventTimeUnreadable as exc:
        log.warning("automatic-reply window skipped", extra={"user": user_id,
                                                             "reason": str(exc)})
        start = end = None
    return AutomaticReplies(str(data.get("status") or "disabled"), start, end)
