"""`calendar: getSchedule`: free/busy of up to 20 mailboxes over a window of up to 62 days.

Sources: api-reference/v1.0/api/calendar-getschedule.md (body, interval 5..1440, default
30), resources/scheduleinformation.md (digits 0 free, 1 tentative, 2 busy, 3 oof,
4 workingElsewhere), concepts/outlook-get-free-busy-schedule.md (20 entities, window
under 62 days, one error item for an address it cannot resolve). Error codes and texts
for the limits are the ones users report from the service (issues
microsoftgraph/microsoft-graph-docs#6450, #7047, PR #19703; contrib#11225 for the
unresolved-address item).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from m365sim.errors import GraphError
from m365sim.outlook.model import Instance, Mailbox
from m365sim.outlook.timezones import date_time_time_zone, parse_date_time_time_zone

MAX_SCHEDULES = 20
MAX_WINDOW_DAYS = 62
DIGIT = {"free": "0", "unknown": "0", "tentative": "1", "busy": "2", "oof": "3",
         "workingElsewhere": "4"}
# Which status a slot shows when several items overlap it (simulator's order: the
# documented digits have no stated precedence beyond busy over tentative in the examples).
RANK = {"free": 0, "unknown": 0, "workingElsewhere": 1, "tentative": 2, "busy": 3, "oof": 4}
PRIVATE = ("private", "confidential")


@dataclass(frozen=True)
class ScheduleRequest:
    """A validated getSchedule body."""

    schedules: list[str]
    start: datetime
    end: datetime
    interval: int


def _param(body: Mapping[str, Any], name: str) -> Any:
    # The metadata spells the parameters Schedules/StartTime/...; the docs camelCase them.
    lowered = {str(k).casefold(): v for k, v in body.items()}
    return lowered.get(name.casefold())


def parse_request(body: Any, max_schedules: int = MAX_SCHEDULES) -> ScheduleRequest:
    """Validate a getSchedule body; GraphError 400 with Outlook's code when it is wrong."""
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "The request body must be a JSON object.")
    schedules = _param(body, "schedules")
    if not isinstance(schedules, list) or not all(isinstance(s, str) for s in schedules):
        raise GraphError(400, "ErrorInvalidParameter",
                         "'schedules' must be a collection of SMTP addresses.")
    if not schedules:
        raise GraphError(400, "ErrorInvalidParameter", "At least one schedule is required.")
    if len(schedules) > max_schedules:
        raise GraphError(400, "ErrorMailboxDataArrayTooBig",
                         "There are too many target users in the EmailAddress array. The "
                         f"allowed size = {max_schedules}; the actual size = {len(schedules)}.")
    for name in ("startTime", "endTime"):
        if _param(body, name) is None:
            raise GraphError(400, "ErrorInvalidParameter", f"'{name}' is required.")
    start, _ = parse_date_time_time_zone(_param(body, "startTime"), "startTime")
    end, _ = parse_date_time_time_zone(_param(body, "endTime"), "endTime")
    if end <= start:
        raise GraphError(400, "ErrorInvalidTimeInterval",
                         "The time duration specified for FreeBusyViewOptions.TimeWindow is "
                         "invalid.")
    days = math.ceil((end - start) / timedelta(days=1))
    if days > MAX_WINDOW_DAYS:
        raise GraphError(400, "ErrorTimeIntervalTooBig",
                         "The requested time duration specified for FreeBusyViewOptions."
                         f"TimeWindow is too long. The allowed limit = {MAX_WINDOW_DAYS} days; "
                         f"the actual limit = {days} days.")
    raw_interval = _param(body, "availabilityViewInterval")
    interval = 30 if raw_interval is None else _interval(raw_interval)
    if not 5 <= interval <= 1440 or timedelta(minutes=interval) > end - start:
        raise GraphError(400, "ErrorInvalidMergedFreeBusyInterval",
                         "The specified merged free/busy interval is not valid. Specify an "
                         "interval that is less than the free/busy time window and  between 5 "
                         "and 1440 minutes.")
    return ScheduleRequest(list(schedules), start, end, interval)


def _interval(value: Any) -> int:
    # An Int32 may arrive as a JSON string (the concept page's example sends "15").
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return -1


def availability_view(instances: list[Instance], request: ScheduleRequest) -> str:
    """One digit per slot: the highest-ranked status of the items overlapping the slot."""
    step = timedelta(minutes=request.interval)
    slots = math.ceil((request.end - request.start) / step)
    best = ["free"] * slots
    for instance in instances:
        if instance.start >= request.end:
            continue
        # Slot i is [start + i*step, start + (i+1)*step); the item meets the slots from the
        # one holding its start to the last one starting before its end.
        first = max(0, (instance.start - request.start) // step)
        last = min(slots - 1, -((request.start - instance.end) // step) - 1)
        status = instance.event.show_as
        for index in range(first, last + 1):
            if RANK.get(status, 0) > RANK.get(best[index], 0):
                best[index] = status
    return "".join(DIGIT.get(status, "0") for status in best)


def schedule_item(instance: Instance, zone: str, detailed: bool) -> dict[str, Any]:
    """A scheduleItem; subject and location only when the caller may see them."""
    event = instance.event
    item: dict[str, Any] = {"isPrivate": event.sensitivity in PRIVATE,
                            "status": event.show_as}
    if detailed and event.sensitivity not in PRIVATE:
        item["subject"] = event.subject
        item["location"] = event.location or ""
    item["start"] = date_time_time_zone(instance.start, zone)
    item["end"] = date_time_time_zone(instance.end, zone)
    return item


def schedule_information(
    address: str,
    mailbox: Mailbox | None,
    request: ScheduleRequest,
    zone: str,
    instances_of: Callable[[Mailbox, datetime, datetime], list[Instance]],
    detailed: bool,
) -> dict[str, Any]:
    """The scheduleInformation for one requested address."""
    if mailbox is None:
        return {"scheduleId": address, "availabilityView": "", "scheduleItems": [],
                "error": {"message": f"Unable to resolve e-mail address {address} to an "
                                     "Active Directory object.", "responseCode": "5009"}}
    # Cancelled meetings and free time do not block anyone (items shown as free are left out).
    busy = [i for i in instances_of(mailbox, request.start, request.end)
            if not i.event.is_cancelled and i.event.show_as != "free"]
    busy.sort(key=lambda i: (i.start, i.end))
    hours = mailbox.working_hours
    return {
        "scheduleId": address,
        "availabilityView": availability_view(busy, request),
        "scheduleItems": [schedule_item(i, zone, detailed) for i in busy],
        "workingHours": {
            "daysOfWeek": list(hours.days_of_week),
            "startTime": f"{hours.start}.0000000",
            "endTime": f"{hours.end}.0000000",
            "timeZone": {"name": mailbox.time_zone},
        },
    }
