"""calendarView: windowing, time zones, all-day and cancelled events, series, paging."""

from __future__ import annotations

from typing import Any

import httpx

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.outlook.conftest import view_params
from tests.sim.outlook.schemas import check_collection, fixture, shape

VIEW = "/v1.0/users/anna@contoso.com/calendarView"


def add(sim: Simulator, tenant: Tenant, user: User, **spec: Any) -> str:
    return sim.outlook.add_event(tenant, user, spec).id


async def subjects(client: httpx.AsyncClient, headers: dict[str, str], start: str,
                   end: str) -> list[str]:
    response = await client.get(VIEW, params=view_params(start, end), headers=headers)
    assert response.status_code == 200, response.text
    return [e["subject"] for e in response.json()["value"]]


async def test_only_events_overlapping_the_window_are_returned(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="ends at window start", start="2026-01-05T07:00:00Z",
        end="2026-01-05T08:00:00Z")
    add(sim, tenant, anna, subject="inside", start="2026-01-05T08:30:00Z", duration="1h")
    add(sim, tenant, anna, subject="crosses the end", start="2026-01-05T09:45:00Z",
        duration="30m")
    add(sim, tenant, anna, subject="starts at window end", start="2026-01-05T10:00:00Z",
        duration="1h")
    add(sim, tenant, anna, subject="spans the window", start="2026-01-05T06:00:00Z",
        end="2026-01-05T12:00:00Z")
    assert await subjects(client, app_headers, "2026-01-05T08:00:00Z",
                          "2026-01-05T10:00:00Z") == [
        "spans the window", "inside", "crosses the end"]


async def test_window_values_use_their_offset_and_default_to_utc(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="at 17:00 UTC", start="2026-01-05T17:00:00Z", duration="30m")
    # 09:00-10:00 Pacific is 17:00-18:00 UTC; the same digits without an offset are UTC.
    assert await subjects(client, app_headers, "2026-01-05T09:00:00-08:00",
                          "2026-01-05T10:00:00-08:00") == ["at 17:00 UTC"]
    assert await subjects(client, app_headers, "2026-01-05T09:00:00",
                          "2026-01-05T10:00:00") == []


async def test_prefer_outlook_timezone_converts_returned_times(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="Berlin nine", start="2026-01-05T09:00:00",
        time_zone="W. Europe Standard Time", duration="1h")
    params = view_params("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z")
    plain = (await client.get(VIEW, params=params, headers=app_headers)).json()["value"][0]
    assert plain["start"] == {"dateTime": "2026-01-05T08:00:00.0000000", "timeZone": "UTC"}
    assert plain["originalStartTimeZone"] == "W. Europe Standard Time"
    for zone, wall in (("Pacific Standard Time", "2026-01-05T00:00:00.0000000"),
                       ("Europe/Berlin", "2026-01-05T09:00:00.0000000")):
        response = await client.get(VIEW, params=params, headers={
            **app_headers, "Prefer": f'outlook.timezone="{zone}"'})
        event = response.json()["value"][0]
        assert event["start"] == {"dateTime": wall, "timeZone": zone}
        assert response.headers["Preference-Applied"] == f'outlook.timezone="{zone}"'


async def test_all_day_event_spans_midnight_to_midnight_in_its_own_zone(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="Holiday", start="2026-01-06", is_all_day=True,
        show_as="oof", time_zone="W. Europe Standard Time")
    # Berlin's 6 January is 23:00 UTC on the 5th to 23:00 UTC on the 6th.
    assert await subjects(client, app_headers, "2026-01-05T22:30:00Z",
                          "2026-01-05T23:30:00Z") == ["Holiday"]
    assert await subjects(client, app_headers, "2026-01-06T23:00:00Z",
                          "2026-01-07T01:00:00Z") == []
    response = await client.get(VIEW, params=view_params(
        "2026-01-06T00:00:00Z", "2026-01-07T00:00:00Z"), headers={
        **app_headers, "Prefer": 'outlook.timezone="Pacific Standard Time"'})
    event = response.json()["value"][0]
    assert event["isAllDay"] is True
    assert event["start"]["dateTime"] == "2026-01-06T00:00:00.0000000"
    assert event["end"]["dateTime"] == "2026-01-07T00:00:00.0000000"


async def test_cancelled_meeting_stays_flagged_for_attendees_and_goes_for_organizers(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    invited = add(sim, tenant, anna, subject="Ben's review", start="2026-01-05T10:00:00Z",
                  duration="1h", organizer="ben@contoso.com")
    own = add(sim, tenant, anna, subject="Anna's sync", start="2026-01-05T11:00:00Z",
              duration="1h")
    sim.outlook.cancel_event(tenant, anna, invited)
    sim.outlook.cancel_event(tenant, anna, own)
    response = await client.get(VIEW, params=view_params(
        "2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"), headers=app_headers)
    [event] = response.json()["value"]
    assert event["id"] == invited
    assert event["isCancelled"] is True
    assert event["showAs"] == "free"
    assert event["subject"] == "Canceled: Ben's review"
    assert event["isOrganizer"] is False
    assert event["organizer"]["emailAddress"]["address"] == "ben@contoso.com"


async def test_series_are_expanded_into_occurrences(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    master = add(sim, tenant, anna, subject="Standup", start="2026-01-05T09:00:00",
                 time_zone="W. Europe Standard Time", duration="15m",
                 recurrence={"type": "weekly", "days": ["monday", "wednesday"], "count": 3})
    response = await client.get(VIEW, params=view_params(
        "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), headers=app_headers)
    events = response.json()["value"]
    assert [e["start"]["dateTime"][:16] for e in events] == [
        "2026-01-05T08:00", "2026-01-07T08:00", "2026-01-12T08:00"]
    assert {e["type"] for e in events} == {"occurrence"}
    assert {e["seriesMasterId"] for e in events} == {master}
    assert len({e["id"] for e in events}) == 3


async def test_paging_follows_next_links_with_top_and_the_default_page(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    for minute in range(25):
        add(sim, tenant, anna, subject=f"m{minute:02d}",
            start=f"2026-01-05T10:{minute:02d}:00Z", duration="1m")
    params = view_params("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z")
    default_page = (await client.get(VIEW, params=params, headers=app_headers)).json()
    assert len(default_page["value"]) == 10
    seen: list[str] = []
    url: str | None = VIEW
    request_params: dict[str, Any] | None = {**params, "$top": "7"}
    while url:
        body = (await client.get(url, params=request_params, headers=app_headers)).json()
        seen += [e["subject"] for e in body["value"]]
        assert len(body["value"]) <= 7
        url, request_params = body.get("@odata.nextLink"), None
        assert url is None or url.startswith("https://sim.test/v1.0/users/")
    assert seen == [f"m{minute:02d}" for minute in range(25)]
    small = await client.get(VIEW, params=params, headers={
        **app_headers, "Prefer": "odata.maxpagesize=4"})
    assert len(small.json()["value"]) == 4
    assert small.headers["Preference-Applied"] == "odata.maxpagesize=4"


async def test_select_returns_only_the_chosen_properties(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="Chosen", start="2026-01-05T10:00:00Z", duration="1h")
    params = view_params("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z",
                         **{"$select": "subject,start"})
    body = (await client.get(VIEW, params=params, headers=app_headers)).json()
    assert set(body["value"][0]) == {"@odata.etag", "id", "subject", "start"}
    assert body["@odata.context"].endswith("/calendarView(subject,start)")
    bad = await client.get(VIEW, params={**params, "$select": "subject,colour"},
                           headers=app_headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "RequestBroker--ParseUri"
    assert "colour" in bad.json()["error"]["message"]


async def test_answers_match_the_event_schema_and_the_fixture_shape(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    add(sim, tenant, anna, subject="Weekly sync", start="2026-01-05T09:00:00Z", duration="30m",
        is_online_meeting=True, location="Room 1", sensitivity="private")
    add(sim, tenant, anna, subject="Vacation", start="2026-01-06", is_all_day=True,
        show_as="oof")
    add(sim, tenant, anna, subject="Series", start="2026-01-05T12:00:00Z", duration="30m",
        recurrence={"type": "daily", "until": "2026-01-09"})
    body = (await client.get(VIEW, params=view_params(
        "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z"), headers=app_headers)).json()
    check_collection(body, "types/event.json")
    expected = fixture("calendarview.response.json")["value"][0]
    for event in body["value"]:
        assert {k: shape(event[k]) for k in expected} == shape(expected)
    events = (await client.get("/v1.0/users/anna@contoso.com/events",
                               headers=app_headers)).json()
    check_collection(events, "types/event.json")
