"""Pure pieces of the outlook part: zones, durations, recurrence, contact filters."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m365sim.errors import GraphError
from m365sim.outlook.contact_query import order, parse_filter, parse_search
from m365sim.outlook.model import Contact, EmailAddress, Event, Instance, Recurrence
from m365sim.outlook.recurrence import instances, split_occurrence_id
from m365sim.outlook.schedule import DIGIT, RANK, ScheduleRequest, availability_view
from m365sim.outlook.specs import SpecError, parse_duration
from m365sim.outlook.timezones import (
    WINDOWS_TO_IANA,
    date_time_time_zone,
    parse_date_time_time_zone,
    resolve_zone,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(WINDOWS_TO_IANA))
def test_every_windows_zone_in_the_table_resolves(name: str) -> None:
    assert resolve_zone(name).utcoffset(T0) is not None


def test_windows_and_iana_names_give_the_same_wall_clock() -> None:
    moment = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert date_time_time_zone(moment, "W. Europe Standard Time")["dateTime"] == \
        date_time_time_zone(moment, "Europe/Berlin")["dateTime"] == "2026-07-01T14:00:00.0000000"
    assert date_time_time_zone(moment, "Pacific Standard Time") == {
        "dateTime": "2026-07-01T05:00:00.0000000", "timeZone": "Pacific Standard Time"}


def test_unknown_zone_is_refused_with_outlooks_error() -> None:
    with pytest.raises(GraphError) as caught:
        resolve_zone("Mars Standard Time")
    assert caught.value.status == 400
    assert caught.value.code == "TimeZoneNotSupportedException"
    assert "Mars Standard Time" in caught.value.message


def test_date_time_time_zone_reads_seven_fraction_digits_and_any_key_case() -> None:
    moment, zone = parse_date_time_time_zone(
        {"DateTime": "2019-03-15T09:00:00.0000000", "TimeZone": "Pacific Standard Time"}, "x")
    assert zone == "Pacific Standard Time"
    assert moment == datetime(2019, 3, 15, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("1h", timedelta(hours=1)),
    ("1h30m", timedelta(minutes=90)), ("2d", timedelta(days=2)), ("90s", timedelta(seconds=90)),
    ("PT1H", timedelta(hours=1)), ("P1DT2H", timedelta(days=1, hours=2)),
    (45, timedelta(seconds=45)),
])
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text, "duration") == expected


@pytest.mark.parametrize("text", ["", "soon", "1y", "P", True])
def test_bad_durations_name_the_key(text: object) -> None:
    with pytest.raises(SpecError, match="duration"):
        parse_duration(text, "duration")


def _series(rule: Recurrence, start: datetime, minutes: int = 30,
            zone: str = "W. Europe Standard Time") -> Event:
    return Event(id="AAMkAGseries", subject="s", start=start,
                 end=start + timedelta(minutes=minutes), time_zone=zone, organizer_name="o",
                 organizer_address="o@contoso.com", created=T0, modified=T0, recurrence=rule)


def test_weekly_series_with_interval_and_count() -> None:
    # Monday 5 Jan 2026, 09:00 Berlin; every second week on Monday and Thursday, 5 times.
    rule = Recurrence("weekly", interval=2, days_of_week=("monday", "thursday"),
                      first_day_of_week="monday", range_type="numbered", number_of_occurrences=5)
    series = _series(rule, datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    found = instances(series, T0 - timedelta(days=1), T0 + timedelta(days=60))
    assert [i.start.date() for i in found] == [date(2026, 1, 5), date(2026, 1, 8),
                                               date(2026, 1, 19), date(2026, 1, 22),
                                               date(2026, 2, 2)]
    assert all(i.occurrence_id and split_occurrence_id(i.occurrence_id) for i in found)


def test_daily_series_keeps_wall_clock_time_across_daylight_saving() -> None:
    # Berlin moves to summer time on 29 March 2026: 09:00 local is 08:00 UTC before, 07:00 after.
    rule = Recurrence("daily", range_type="endDate", end_date=date(2026, 3, 31))
    series = _series(rule, datetime(2026, 3, 27, 8, 0, tzinfo=UTC))
    found = instances(series, datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 4, 5, tzinfo=UTC))
    assert [i.start.hour for i in found] == [8, 8, 7, 7, 7]
    assert [i.end - i.start for i in found] == [timedelta(minutes=30)] * 5


def test_series_occurrence_reaching_into_the_window_counts() -> None:
    rule = Recurrence("daily")
    series = _series(rule, datetime(2026, 1, 5, 23, 0, tzinfo=UTC), minutes=120, zone="UTC")
    found = instances(series, datetime(2026, 1, 7, 0, 30, tzinfo=UTC),
                      datetime(2026, 1, 7, 0, 45, tzinfo=UTC))
    assert [i.start for i in found] == [datetime(2026, 1, 6, 23, 0, tzinfo=UTC)]


def _contact(name: str, given: str, surname: str, company: str, *emails: str) -> Contact:
    return Contact(id=f"AAMkAG{name}", folder_id="f", created=T0, modified=T0,
                   display_name=name, given_name=given, surname=surname, company_name=company,
                   email_addresses=[EmailAddress(e) for e in emails])


PEOPLE = [
    _contact("Pavel Bansky", "Pavel", "Bansky", "Fabrikam", "pavelb@fabrikam.com"),
    _contact("Dana Swope", "Dana", "Swope", "Contoso Ltd", "dana@contoso.org", "ds@home.net"),
    _contact("Pat O'Neil", "Pat", "O'Neil", "Fabrikam", "pat@fabrikam.com"),
]


@pytest.mark.parametrize(("expression", "names"), [
    ("emailAddresses/any(a:a/address eq 'DS@home.net')", ["Dana Swope"]),
    ("startswith(displayName,'pa')", ["Pavel Bansky", "Pat O'Neil"]),
    ("surname eq 'O''Neil'", ["Pat O'Neil"]),
    ("givenName eq 'dana' or startswith(surname, 'ban')", ["Pavel Bansky", "Dana Swope"]),
    ("companyName eq 'Fabrikam' and (givenName eq 'Pat' or givenName eq 'Dana')", ["Pat O'Neil"]),
])
def test_supported_contact_filters(expression: str, names: list[str]) -> None:
    matches = parse_filter(expression)
    assert [c.display_name for c in PEOPLE if matches(c)] == names


@pytest.mark.parametrize("expression", [
    "emailAddresses/any(a:a/name eq 'Dana')",
    "emailAddresses/any(a:a/address ne 'x@y.z')",
    "displayName ne 'Dana'",
    "jobTitle eq 'Boss'",
    "startswith(jobTitle,'B')",
])
def test_unsupported_contact_filters_get_invalid_nodes(expression: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_filter(expression)
    assert (caught.value.status, caught.value.code) == (400, "ErrorInvalidUrlQueryFilter")


@pytest.mark.parametrize("expression", ["displayName eq", "startswith(displayName 'x')",
                                        "(givenName eq 'a'", "givenName eq 'a' extra", "  "])
def test_unparsable_contact_filters_get_bad_request(expression: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_filter(expression)
    assert (caught.value.status, caught.value.code) == (400, "BadRequest")


def test_search_matches_word_prefixes_of_names_company_and_addresses() -> None:
    assert [c.display_name for c in PEOPLE if parse_search('"fabri"')(c)] == [
        "Pavel Bansky", "Pat O'Neil"]
    assert [c.display_name for c in PEOPLE if parse_search('"dana sw"')(c)] == ["Dana Swope"]
    assert [c.display_name for c in PEOPLE if parse_search("ds")(c)] == ["Dana Swope"]
    assert not [c for c in PEOPLE if parse_search('"avel"')(c)]


def test_orderby_display_name_both_ways() -> None:
    assert [c.display_name for c in order(PEOPLE, "displayName")] == [
        "Dana Swope", "Pat O'Neil", "Pavel Bansky"]
    assert [c.display_name for c in order(PEOPLE, "displayName desc")] == [
        "Pavel Bansky", "Pat O'Neil", "Dana Swope"]
    with pytest.raises(GraphError):
        order(PEOPLE, "mobilePhone")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-120, 600), st.integers(0, 300),
                          st.sampled_from(["free", "tentative", "busy", "oof",
                                           "workingElsewhere"])), max_size=8),
       st.integers(5, 90), st.integers(5, 480))
def test_availability_view_matches_the_overlap_rule_slot_by_slot(
    items: list[tuple[int, int, str]], interval: int, length: int,
) -> None:
    if interval > length:
        interval = length
    request = ScheduleRequest([], T0, T0 + timedelta(minutes=length), interval)
    found = [Instance(Event(id=f"AAMkAG{n}", subject="s", start=T0, end=T0, time_zone="UTC",
                            organizer_name="o", organizer_address="o@x", created=T0,
                            modified=T0, show_as=status),
                      T0 + timedelta(minutes=offset),
                      T0 + timedelta(minutes=offset + duration))
             for n, (offset, duration, status) in enumerate(items)]
    view = availability_view(found, request)
    step = timedelta(minutes=interval)
    assert len(view) == -(-length // interval)
    for index, digit in enumerate(view):
        slot_start = request.start + index * step
        slot_end = min(slot_start + step, request.end)
        statuses = [i.event.show_as for i in found
                    if i.start < slot_end and i.end > slot_start]
        expected = max(statuses, key=lambda s: RANK[s], default="free")
        assert digit == DIGIT[expected]
