"""Monthly and yearly series in the simulator (recurrencepattern.md's four other types)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from m365sim.outlook.model import Event, Recurrence
from m365sim.outlook.recurrence import instances
from m365sim.outlook.specs import SpecError, recurrence

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _series(rule: Recurrence, start: datetime) -> Event:
    return Event(id="AAMkAGseries", subject="s", start=start,
                 end=start + timedelta(minutes=30), time_zone="W. Europe Standard Time",
                 organizer_name="o", organizer_address="o@contoso.com", created=T0,
                 modified=T0, recurrence=rule)


def _dates(rule: Recurrence, start: datetime, days: int = 800) -> list[date]:
    found = instances(_series(rule, start), start - timedelta(days=1),
                      start + timedelta(days=days))
    return [i.start.astimezone(UTC).date() for i in found]


def test_absolute_monthly_on_the_31st_falls_on_the_last_day_of_short_months() -> None:
    rule = Recurrence("absoluteMonthly", day_of_month=31, range_type="numbered",
                      number_of_occurrences=4)
    assert _dates(rule, datetime(2026, 1, 31, 8, tzinfo=UTC)) == [
        date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]


def test_relative_monthly_every_second_month_on_the_last_friday() -> None:
    rule = Recurrence("relativeMonthly", interval=2, days_of_week=("friday",), index="last",
                      range_type="numbered", number_of_occurrences=3)
    assert _dates(rule, datetime(2026, 1, 30, 8, tzinfo=UTC)) == [
        date(2026, 1, 30), date(2026, 3, 27), date(2026, 5, 29)]


def test_relative_monthly_on_the_first_monday_keeps_09_00_in_summer() -> None:
    rule = Recurrence("relativeMonthly", days_of_week=("monday",), index="first",
                      range_type="numbered", number_of_occurrences=4)
    found = instances(_series(rule, datetime(2026, 2, 2, 8, tzinfo=UTC)), T0,
                      T0 + timedelta(days=200))
    assert [(i.start.month, i.start.day, i.start.hour) for i in found] == [
        (2, 2, 8), (3, 2, 8), (4, 6, 7), (5, 4, 7)]


def test_absolute_and_relative_yearly() -> None:
    birthday = Recurrence("absoluteYearly", day_of_month=29, month=2, range_type="numbered",
                          number_of_occurrences=3)
    assert _dates(birthday, datetime(2028, 2, 29, 8, tzinfo=UTC), days=1500) == [
        date(2028, 2, 29), date(2029, 2, 28), date(2030, 2, 28)]
    thanksgiving = Recurrence("relativeYearly", days_of_week=("thursday",), index="fourth",
                              month=11, range_type="numbered", number_of_occurrences=2)
    assert _dates(thanksgiving, datetime(2026, 11, 26, 17, tzinfo=UTC)) == [
        date(2026, 11, 26), date(2027, 11, 25)]


def test_graphs_form_and_the_short_form_read_the_same() -> None:
    graph = recurrence({"pattern": {"type": "relativeMonthly", "interval": 1,
                                    "daysOfWeek": ["Monday"], "index": "second",
                                    "month": 0, "dayOfMonth": 0, "firstDayOfWeek": "sunday"},
                        "range": {"type": "noEnd", "startDate": "2026-01-12"}})
    short = recurrence({"type": "relativeMonthly", "days": ["monday"], "index": "second"})
    assert graph is not None and short is not None
    assert (graph.pattern_type, graph.days_of_week, graph.index) == (
        short.pattern_type, short.days_of_week, short.index)


@pytest.mark.parametrize(("spec", "says"), [
    ({"type": "absoluteMonthly"}, "needs dayOfMonth"),
    ({"type": "absoluteYearly", "day": 3}, "needs month"),
    ({"type": "relativeMonthly", "index": "first"}, "needs daysOfWeek"),
    ({"type": "relativeMonthly", "days": ["monday"], "index": "fifth"}, "index must be"),
    ({"type": "yearly"}, "is not one of"),
])
def test_incomplete_patterns_are_refused_with_the_missing_key(spec: dict[str, object],
                                                              says: str) -> None:
    with pytest.raises(SpecError, match=says):
        recurrence(spec)


def test_a_cancelled_occurrence_leaves_and_a_moved_one_is_found_at_its_new_time() -> None:
    rule = Recurrence("daily", range_type="numbered", number_of_occurrences=4)
    series = _series(rule, datetime(2026, 1, 5, 8, tzinfo=UTC))
    series.cancelled_occurrences.add(date(2026, 1, 6))
    # The 7th moves to the evening of the 8th: found there, not on the 7th.
    series.moved_occurrences[date(2026, 1, 7)] = (datetime(2026, 1, 8, 17, tzinfo=UTC),
                                                   datetime(2026, 1, 8, 18, tzinfo=UTC))
    found = instances(series, T0, T0 + timedelta(days=30))
    assert [(i.start.day, i.start.hour, i.exception) for i in found] == [
        (5, 8, False), (8, 8, False), (8, 17, True)]
    assert found[2].id.endswith("_20260107")
    only_the_8th = instances(series, datetime(2026, 1, 8, 12, tzinfo=UTC),
                             datetime(2026, 1, 9, tzinfo=UTC))
    assert [i.start.hour for i in only_the_8th] == [17]
