"""calendarView through the real client against the simulator (graph/calendar.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from m365pbx.graph.calendar import EventTimeUnreadable, calendar_view, parse_time
from m365pbx.graph.client import GraphClient
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.simulator import Simulator


def test_graph_times_are_read_in_their_zone() -> None:
    utc = parse_time({"dateTime": "2026-03-29T09:00:00.0000000", "timeZone": "UTC"})
    assert utc == datetime(2026, 3, 29, 9, tzinfo=UTC).timestamp()
    # Berlin is UTC+2 from 29 March 2026 (daylight saving began at 01:00 UTC that day).
    berlin = parse_time({"dateTime": "2026-03-29T09:00:00", "timeZone": "Europe/Berlin"})
    assert berlin == datetime(2026, 3, 29, 7, tzinfo=UTC).timestamp()
    with pytest.raises(EventTimeUnreadable):
        parse_time({"dateTime": "2026-03-29T09:00:00", "timeZone": "Nowhere Standard Time"})
    with pytest.raises(EventTimeUnreadable):
        parse_time({"dateTime": "tomorrow"})


async def test_every_page_and_occurrence_arrives_in_utc(
    sim: Simulator, tenant: Tenant, app_client: GraphClient, clock: VirtualClock,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    start = clock.now()
    for number in range(150):  # more than one page of 100
        sim.outlook.add_event(tenant, anna, {"subject": f"Slot {number}",
                                             "start_in": f"{number * 10}m", "duration": "5m"})
    sim.outlook.add_event(tenant, anna, {
        "subject": "Standup", "start": "2026-01-05T09:00:00",
        "time_zone": "W. Europe Standard Time", "duration": "15m",
        "recurrence": {"type": "daily", "interval": 1, "count": 400}})
    sim.outlook.add_event(tenant, anna, {"subject": "Doctor", "start_in": "30m",
                                         "duration": "1h", "sensitivity": "private",
                                         "show_as": "oof"})
    events = await calendar_view(app_client, anna.id, start, start + timedelta(hours=36))
    slots = [e for e in events if e.subject.startswith("Slot")]
    assert len(slots) == 150
    assert slots[3].start == (start + timedelta(minutes=30)).timestamp()
    assert slots[3].end - slots[3].start == 300
    standups = [e for e in events if e.subject == "Standup"]
    assert 1 <= len(standups) <= 2  # 36 hours hold one or two 09:00 occurrences
    for standup in standups:
        local = datetime.fromtimestamp(standup.start, UTC)
        assert local.hour in (7, 8) and local.minute == 0  # 09:00 in Berlin, summer or winter
    doctor = next(e for e in events if e.subject == "Doctor")
    assert (doctor.sensitivity, doctor.show_as, doctor.is_cancelled) == ("private", "oof", False)


async def test_an_all_day_event_spans_the_midnights_of_its_own_zone(
    sim: Simulator, tenant: Tenant, app_client: GraphClient, clock: VirtualClock,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    day = (clock.now() + timedelta(days=1)).date()
    sim.outlook.add_event(tenant, anna, {"subject": "Holiday", "start": day.isoformat(),
                                         "is_all_day": True, "duration": "1d",
                                         "show_as": "oof",
                                         "time_zone": "Tokyo Standard Time"})
    start = clock.now()
    events = await calendar_view(app_client, anna.id, start, start + timedelta(days=3))
    holiday = next(e for e in events if e.subject == "Holiday")
    tokyo = ZoneInfo("Asia/Tokyo")
    assert holiday.is_all_day
    assert holiday.start == datetime.combine(day, time(), tokyo).timestamp()
    assert holiday.end == datetime.combine(day + timedelta(days=1), time(), tokyo).timestamp()


async def test_a_weekly_series_keeps_its_local_time_across_daylight_saving(
    sim: Simulator, tenant: Tenant, app_client: GraphClient,
) -> None:
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    # Mondays 09:00 in Berlin; summer time begins on Sunday 29 March 2026.
    sim.outlook.add_event(tenant, ben, {
        "subject": "Jour fixe", "start": "2026-03-16T09:00:00",
        "time_zone": "W. Europe Standard Time", "duration": "30m",
        "recurrence": {"type": "weekly", "days": ["monday"], "count": 4}})
    events = await calendar_view(app_client, ben.id, datetime(2026, 3, 15, tzinfo=UTC),
                                 datetime(2026, 4, 10, tzinfo=UTC))
    starts = [datetime.fromtimestamp(e.start, UTC) for e in events if e.subject == "Jour fixe"]
    assert [(s.day, s.hour) for s in starts] == [(16, 8), (23, 8), (30, 7), (6, 7)]
    berlin = ZoneInfo("Europe/Berlin")
    assert {s.astimezone(berlin).hour for s in starts} == {9}


async def test_a_cancelled_occurrence_is_gone_and_a_moved_one_read_at_its_new_time(
    sim: Simulator, tenant: Tenant, app_client: GraphClient, clock: VirtualClock,
) -> None:
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    start = clock.now()
    series = sim.outlook.add_event(tenant, ben, {
        "subject": "Standup", "start_in": "1h", "duration": "15m",
        "recurrence": {"type": "daily", "count": 3}})
    first = datetime.fromtimestamp(
        (await calendar_view(app_client, ben.id, start, start + timedelta(hours=2)))[0].start,
        UTC)
    occurrences = [e for e in await calendar_view(app_client, ben.id, start,
                                                  start + timedelta(days=3))]
    assert len(occurrences) == 3 and all(e.id.startswith(series.id) for e in occurrences)
    sim.outlook.cancel_event(tenant, ben, occurrences[1].id)
    moved_to = first + timedelta(days=2, hours=3)
    sim.outlook.update_event(tenant, ben, occurrences[2].id, {"start": moved_to.isoformat()})
    after = await calendar_view(app_client, ben.id, start, start + timedelta(days=3))
    assert [datetime.fromtimestamp(e.start, UTC) for e in after] == [first, moved_to]
    assert after[1].end - after[1].start == 900
