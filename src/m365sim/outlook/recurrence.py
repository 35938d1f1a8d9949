"""Expanding events into the instances that occupy time (single instances and occurrences).

Supported: all six pattern types of resources/recurrencepattern.md (`daily`, `weekly`,
`absoluteMonthly`, `relativeMonthly`, `absoluteYearly`, `relativeYearly`) with `interval`,
`daysOfWeek`, `firstDayOfWeek`, `dayOfMonth`, `month` and `index`, and the ranges
`endDate`, `noEnd` and `numbered` (recurrencerange.md). Occurrences keep the series'
wall-clock time in its own time zone, so a 09:00 meeting stays at 09:00 across a
daylight-saving change. Chosen where the page is silent: a `dayOfMonth` beyond the month's
end falls on its last day (as Outlook shows "day 31" in April); a relative pattern with
several days of the week has an occurrence on the index-th of each of them. Single
occurrences can be cancelled (they leave the series) or moved (type "exception", with
their own start and end; found by their new times).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from m365sim.outlook.model import WEEKDAYS, Event, Instance, Recurrence
from m365sim.outlook.timezones import resolve_zone

OCCURRENCE_SEPARATOR = "_"
# How far a series without an end is followed when looking for the next start or end.
HORIZON = timedelta(days=800)


def occurrence_id(master_id: str, day: date) -> str:
    """The id of one occurrence: the master's id and the occurrence's local date."""
    return f"{master_id}{OCCURRENCE_SEPARATOR}{day.strftime('%Y%m%d')}"


def split_occurrence_id(item_id: str) -> tuple[str, date] | None:
    """(master id, local date) of an occurrence id, or None for any other id."""
    master, sep, suffix = item_id.rpartition(OCCURRENCE_SEPARATOR)
    if not sep or len(suffix) != 8 or not suffix.isdigit():
        return None
    try:
        return master, datetime.strptime(suffix, "%Y%m%d").date()
    except ValueError:
        return None


def _week_start(day: date, first_day_of_week: str) -> date:
    offset = (day.weekday() - WEEKDAYS.index(first_day_of_week)) % 7
    return day - timedelta(days=offset)


MONTHLY = ("absoluteMonthly", "relativeMonthly")
YEARLY = ("absoluteYearly", "relativeYearly")
PATTERNS = ("daily", "weekly", *MONTHLY, *YEARLY)
INDEXES = ("first", "second", "third", "fourth", "last")


def _on_day_of_month(rule: Recurrence, day: date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    return day.day == min(rule.day_of_month, last)


def _on_index(rule: Recurrence, day: date) -> bool:
    if WEEKDAYS[day.weekday()] not in rule.days_of_week:
        return False
    if rule.index == "last":
        return (day + timedelta(days=7)).month != day.month
    return (day.day - 1) // 7 == INDEXES.index(rule.index)


def _matches(rule: Recurrence, first: date, day: date) -> bool:
    interval = max(rule.interval, 1)
    if rule.pattern_type == "daily":
        return (day - first).days % interval == 0
    if rule.pattern_type in MONTHLY:
        months = (day.year - first.year) * 12 + day.month - first.month
        if months % interval:
            return False
        return (_on_day_of_month(rule, day) if rule.pattern_type == "absoluteMonthly"
                else _on_index(rule, day))
    if rule.pattern_type in YEARLY:
        if (day.year - first.year) % interval or day.month != rule.month:
            return False
        return (_on_day_of_month(rule, day) if rule.pattern_type == "absoluteYearly"
                else _on_index(rule, day))
    if WEEKDAYS[day.weekday()] not in rule.days_of_week:
        return False
    weeks = (_week_start(day, rule.first_day_of_week)
             - _week_start(first, rule.first_day_of_week)).days // 7
    return weeks % max(rule.interval, 1) == 0


def occurrence_dates(event: Event, until: date) -> Iterator[date]:
    """The local dates on which a series has occurrences, up to and including `until`."""
    rule = event.recurrence
    assert rule is not None
    zone = resolve_zone(event.time_zone)
    first = rule.start_date or event.start.astimezone(zone).date()
    last = until if rule.range_type != "endDate" or rule.end_date is None else min(
        until, rule.end_date)
    count = 0
    day = first
    while day <= last:
        if _matches(rule, first, day):
            count += 1
            if rule.range_type == "numbered" and count > rule.number_of_occurrences:
                return
            yield day
        day += timedelta(days=1)


def _occurrence(event: Event, day: date) -> Instance:
    moved = event.moved_occurrences.get(day)
    if moved is not None:
        return Instance(event, moved[0], moved[1], occurrence_id(event.id, day),
                        exception=True)
    zone = resolve_zone(event.time_zone)
    local_start = event.start.astimezone(zone).replace(tzinfo=None)
    local_end = event.end.astimezone(zone).replace(tzinfo=None)
    start_naive = datetime.combine(day, local_start.time())
    end_naive = start_naive + (local_end - local_start)
    start = start_naive.replace(tzinfo=zone).astimezone(event.start.tzinfo)
    end = end_naive.replace(tzinfo=zone).astimezone(event.start.tzinfo)
    return Instance(event, start, end, occurrence_id(event.id, day))


def instances(event: Event, window_start: datetime, window_end: datetime) -> list[Instance]:
    """The event's instances that overlap [window_start, window_end)."""
    if event.recurrence is None:
        return [Instance(event, event.start, event.end)] if overlaps(
            event.start, event.end, window_start, window_end) else []
    zone = resolve_zone(event.time_zone)
    duration = event.end - event.start
    found = []
    # An occurrence that starts before the window can still reach into it.
    from_day = (window_start - duration).astimezone(zone).date() - timedelta(days=1)
    until = window_end.astimezone(zone).date()
    for day in occurrence_dates(event, until):
        if day < from_day or day in event.cancelled_occurrences:
            continue
        if day in event.moved_occurrences:
            continue  # found by its new times below
        occurrence = _occurrence(event, day)
        if overlaps(occurrence.start, occurrence.end, window_start, window_end):
            found.append(occurrence)
    for day, (start, end) in event.moved_occurrences.items():
        if day not in event.cancelled_occurrences and overlaps(start, end, window_start,
                                                               window_end):
            found.append(_occurrence(event, day))
    found.sort(key=lambda instance: (instance.start, instance.end))
    return found


def find_occurrence(event: Event, day: date) -> Instance | None:
    """The occurrence of a series on a local date, if the series has one then."""
    if event.recurrence is None or day in event.cancelled_occurrences:
        return None
    for candidate in occurrence_dates(event, day):
        if candidate == day:
            return _occurrence(event, day)
    return None


def overlaps(start: datetime, end: datetime, window_start: datetime,
             window_end: datetime) -> bool:
    """Whether [start, end) meets [window_start, window_end); a zero-length item counts
    when it lies inside the window."""
    if start == end:
        return window_start <= start < window_end
    return start < window_end and end > window_start


def validate(rule: Recurrence) -> str | None:
    """Why a recurrence cannot be simulated, or None when it can."""
    if rule.pattern_type not in PATTERNS:
        return (f"recurrence pattern '{rule.pattern_type}' is not one of "
                f"{', '.join(PATTERNS)}")
    if rule.interval < 1:
        return "recurrence interval must be at least 1"
    if rule.pattern_type in ("weekly", "relativeMonthly", "relativeYearly") and (
            not rule.days_of_week):
        return f"a {rule.pattern_type} recurrence needs daysOfWeek"
    if rule.pattern_type in ("absoluteMonthly", "absoluteYearly") and not (
            1 <= rule.day_of_month <= 31):
        return f"a {rule.pattern_type} recurrence needs dayOfMonth from 1 to 31"
    if rule.pattern_type in YEARLY and not 1 <= rule.month <= 12:
        return f"a {rule.pattern_type} recurrence needs month from 1 to 12"
    if rule.index not in INDEXES:
        return f"index must be one of {', '.join(INDEXES)}"
    if any(day not in WEEKDAYS for day in rule.days_of_week):
        return f"daysOfWeek must be among {', '.join(WEEKDAYS)}"
    if rule.first_day_of_week not in WEEKDAYS:
        return f"firstDayOfWeek must be one of {', '.join(WEEKDAYS)}"
    if rule.range_type not in ("endDate", "noEnd", "numbered"):
        return "recurrence range type must be endDate, noEnd or numbered"
    if rule.range_type == "endDate" and rule.end_date is None:
        return "an endDate range needs endDate"
    if rule.range_type == "numbered" and rule.number_of_occurrences < 1:
        return "a numbered range needs numberOfOccurrences of at least 1"
    return None
