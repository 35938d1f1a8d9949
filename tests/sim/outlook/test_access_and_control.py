"""Permissions on calendars, the control routes, scenario entries, and bad input."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from m365sim.model import Tenant, User
from m365sim.scenario import ScenarioError, load_scenario
from m365sim.simulator import Simulator
from tests.sim.conftest import CONTOSO, app_token, bearer, user_token
from tests.sim.outlook.conftest import view_params

WINDOW = view_params("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z")


@pytest.fixture
def meeting(sim: Simulator, tenant: Tenant, anna: User) -> str:
    return sim.outlook.add_event(tenant, anna, {
        "subject": "Plan", "start": "2026-01-05T10:00:00Z", "duration": "1h",
        "body": "<p>agenda</p>"}).id


@pytest.mark.usefixtures("meeting")
async def test_delegated_reads_own_calendar_only(sim: Simulator,
                                                 client: httpx.AsyncClient) -> None:
    anna = bearer(user_token(sim, "anna@contoso.com", ["Calendars.Read"]))
    mine = await client.get("/v1.0/me/calendarView", params=WINDOW, headers=anna)
    assert [e["subject"] for e in mine.json()["value"]] == ["Plan"]
    same = await client.get("/v1.0/users/anna@contoso.com/calendarview", params=WINDOW,
                            headers=anna)
    assert same.status_code == 200
    bens = await client.get("/v1.0/users/ben@contoso.com/calendarView", params=WINDOW,
                            headers=anna)
    assert (bens.status_code, bens.json()["error"]["code"]) == (403, "ErrorAccessDenied")


@pytest.mark.usefixtures("meeting")
async def test_read_basic_leaves_out_the_body(sim: Simulator, client: httpx.AsyncClient) -> None:
    basic = bearer(user_token(sim, "anna@contoso.com", ["Calendars.ReadBasic"]))
    event = (await client.get("/v1.0/me/calendarView", params=WINDOW,
                              headers=basic)).json()["value"][0]
    assert "body" not in event and "bodyPreview" not in event
    full = bearer(user_token(sim, "anna@contoso.com", ["Calendars.Read"]))
    event = (await client.get("/v1.0/me/calendarView", params=WINDOW,
                              headers=full)).json()["value"][0]
    assert event["body"]["content"] == "<p>agenda</p>"
    # As an application permission the basic one is named Calendars.ReadBasic.All.
    app_basic = bearer(app_token(sim, ["Calendars.ReadBasic.All"]))
    url = "/v1.0/users/anna@contoso.com/calendarView"
    event = (await client.get(url, params=WINDOW, headers=app_basic)).json()["value"][0]
    assert "body" not in event
    wrong_name = await client.get(url, params=WINDOW,
                                  headers=bearer(app_token(sim, ["Calendars.ReadBasic"])))
    assert wrong_name.status_code == 403


@pytest.mark.parametrize(("headers_for", "status", "code"), [
    (lambda sim: bearer(app_token(sim, ["User.Read.All"])), 403, "ErrorAccessDenied"),
    (lambda sim: bearer(user_token(sim, "anna@contoso.com", ["User.Read.All"])), 403,
     "ErrorAccessDenied"),
    (lambda sim: bearer(app_token(sim, ["Calendars.Read"], lifetime_s=-1)), 401,
     "InvalidAuthenticationToken"),
    (lambda sim: {"Authorization": "Bearer not.a.jwt"}, 401, "InvalidAuthenticationToken"),
])
async def test_calendar_view_refusals(sim: Simulator, client: httpx.AsyncClient,
                                      headers_for: Any, status: int, code: str) -> None:
    response = await client.get("/v1.0/users/anna@contoso.com/calendarView", params=WINDOW,
                                headers=headers_for(sim))
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


async def test_bad_calendar_view_requests(client: httpx.AsyncClient,
                                          app_headers: dict[str, str]) -> None:
    url = "/v1.0/users/anna@contoso.com/calendarView"
    cases: list[tuple[dict[str, str], dict[str, str], str]] = [
        ({}, {}, "ErrorInvalidParameter"),
        ({"startDateTime": "2026-01-05T00:00:00Z"}, {}, "ErrorInvalidParameter"),
        ({**WINDOW, "startDateTime": "yesterday"}, {}, "ErrorInvalidParameter"),
        (WINDOW, {"Prefer": 'outlook.timezone="Atlantis"'}, "TimeZoneNotSupportedException"),
        ({**WINDOW, "$top": "-1"}, {}, "BadRequest"),
        ({**WINDOW, "$search": "x"}, {}, "BadRequest"),
    ]
    for params, extra, code in cases:
        response = await client.get(url, params=params, headers={**app_headers, **extra})
        assert (response.status_code, response.json()["error"]["code"]) == (400, code), params
    missing = await client.get(url, headers=app_headers)
    assert missing.json()["error"]["message"] == (
        "This request requires a time window specified by the query string parameters "
        "StartDateTime and EndDateTime.")
    repeated = await client.get(f"{url}?startDateTime=a&startDateTime=b&endDateTime=c",
                                headers=app_headers)
    assert repeated.status_code == 400
    # An offset's "+" sent without encoding arrives as a space and does not parse.
    plus = await client.get(f"{url}?startDateTime=2026-01-05T09:00:00+01:00"
                            "&endDateTime=2026-01-05T10:00:00Z", headers=app_headers)
    assert (plus.status_code, plus.json()["error"]["code"]) == (400, "ErrorInvalidParameter")
    encoded = await client.get(f"{url}?startDateTime=2026-01-05T09:00:00%2B01:00"
                               "&endDateTime=2026-01-05T10:00:00Z", headers=app_headers)
    assert encoded.status_code == 200
    unknown = await client.get("/v1.0/users/ghost@contoso.com/calendarView", params=WINDOW,
                               headers=app_headers)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "ErrorInvalidUser")


async def test_control_routes_create_move_and_list(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
) -> None:
    base = "/_sim/tenants/contoso.onmicrosoft.com/users/anna@contoso.com"
    created = await client.post(f"{base}/events", json={
        "subject": "Call", "start": "2026-01-05T14:00:00", "end": "2026-01-05T15:00:00",
        "timeZone": "Europe/Berlin", "showAs": "tentative"})
    assert created.status_code == 201
    event = created.json()
    assert event["start"]["dateTime"] == "2026-01-05T13:00:00.0000000"
    assert event["originalStartTimeZone"] == "Europe/Berlin"
    moved = await client.patch(f"{base}/events/{event['id']}",
                               json={"start": "2026-01-05T16:00:00"})
    assert moved.json()["start"]["dateTime"] == "2026-01-05T15:00:00.0000000"
    assert moved.json()["end"]["dateTime"] == "2026-01-05T16:00:00.0000000"  # same length
    assert moved.json()["changeKey"] != event["changeKey"]
    listing = (await client.get(f"{base}/calendar")).json()
    assert [e["subject"] for e in listing["events"]] == ["Call"]
    assert listing["calendarActivity"] is None


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events",
     {"subject": "no time"}, 400),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events",
     {"start_in": "1h", "show_as": "sleepy"}, 400),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events",
     {"start": "2026-01-05T10:00:00Z", "end": "2026-01-05T09:00:00Z"}, 400),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events",
     {"start": "2026-01-05T10:00:00Z", "is_all_day": True}, 400),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events",
     {"start_in": "1h", "recurrence": {"type": "absoluteMonthly"}}, 400),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/events", ["not", "a", "map"], 400),
    ("POST", "/_sim/tenants/nowhere.com/users/anna@contoso.com/events", {"start_in": "1h"}, 404),
    ("POST", "/_sim/tenants/contoso.com/users/ghost@contoso.com/events", {"start_in": "1h"}, 404),
    ("PATCH", "/_sim/tenants/contoso.com/users/anna@contoso.com/events/AAMkAGnone",
     {"subject": "x"}, 404),
    ("DELETE", "/_sim/tenants/contoso.com/users/anna@contoso.com/events/AAMkAGnone", None, 404),
    ("POST", "/_sim/tenants/contoso.com/users/anna@contoso.com/contacts",
     {"emails": [{"name": "no address"}]}, 400),
    ("DELETE", "/_sim/tenants/contoso.com/users/anna@contoso.com/contacts/AAMkAGnone", None,
     404),
])
async def test_control_bad_input_gets_graph_error_bodies(
    client: httpx.AsyncClient, method: str, path: str, body: Any, status: int,
) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "innerError"}


async def test_control_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/_sim/tenants/contoso.com/users/anna@contoso.com/events",
                                 content=b"{oops", headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "BadRequest")


def _scenario(calendar: Any = None, contacts: Any = None) -> dict[str, Any]:
    data = copy.deepcopy(CONTOSO)
    tenant = data["tenants"][0]
    tenant["id"] = "0d3e7b4c-1111-4222-8333-944455556666"
    tenant["domains"] = ["scenario.example"]
    tenant["users"] = [{"upn": "sam@scenario.example", "calendar": calendar,
                        "contacts": contacts}]
    return data


def test_scenario_calendar_and_contacts_in_both_forms(sim: Simulator) -> None:
    [tenant] = load_scenario(sim, _scenario(
        calendar={"time_zone": "Pacific Standard Time",
                  "working_hours": {"days_of_week": ["monday"], "start_time": "07:00:00",
                                    "end_time": "15:00:00"},
                  "events": [{"subject": "Soon", "start_in": "30m", "duration": "1h"},
                             {"subject": "Fixed", "start": "2026-01-06T09:00:00"}]},
        contacts={"folders": ["Family"],
                  "contacts": [{"display_name": "Mum", "folder": "Family"}]}))
    user = tenant.find_user("sam@scenario.example")
    assert user is not None
    box = sim.outlook.mailbox(tenant.id, user.id)
    soon, fixed = sorted(box.events.values(), key=lambda e: e.start)
    assert soon.start == sim.clock.now().replace(minute=30)
    assert fixed.time_zone == "Pacific Standard Time" and fixed.start.hour == 17
    assert box.working_hours.days_of_week == ("monday",)
    assert [c.display_name for c in box.contacts.values()] == ["Mum"]
    assert box.folders[next(iter(box.contacts.values())).folder_id].display_name == "Family"


@pytest.mark.parametrize(("calendar", "contacts", "where"), [
    ([{"subject": "x"}], None, "calendar[0]"),
    ([{"start_in": "1h"}, {"start_in": "1h", "recurrence": {"type": "yearly"}}], None,
     "calendar[1]"),
    ({"time_zone": "Atlantis"}, None, "calendar"),
    (None, [{"display_name": "ok"}, {"parentFolderId": "AAMkAFnone"}], "contacts[1]"),
])
def test_bad_scenario_entries_name_the_user_and_the_entry(
    sim: Simulator, calendar: Any, contacts: Any, where: str,
) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(sim, _scenario(calendar, contacts))
    assert "sam@scenario.example" in str(caught.value)
    assert where in str(caught.value)
