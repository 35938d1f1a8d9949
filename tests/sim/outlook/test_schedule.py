"""getSchedule: availabilityView for a known day, schedule items, limits and errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer
from tests.sim.outlook.schemas import check_collection, fixture, shape, validator

ACTION = "/v1.0/users/anna@contoso.com/calendar/getSchedule"
PACIFIC = "Pacific Standard Time"


def window(day: str = "2026-03-13", start: str = "09:00:00", end: str = "18:00:00",
           zone: str = PACIFIC) -> dict[str, Any]:
    return {"startTime": {"dateTime": f"{day}T{start}", "timeZone": zone},
            "endTime": {"dateTime": f"{day}T{end}", "timeZone": zone}}


@pytest.fixture
def ben_day(sim: Simulator, tenant: Tenant, ben: User) -> None:
    """Ben's Friday as in the documentation's example of a second schedule."""
    sim.outlook.mailbox(tenant.id, ben.id).time_zone = PACIFIC
    for start, end, show_as, subject in (
        ("08:30", "09:30", "busy", "Early call"),
        ("12:00", "14:00", "busy", "Lunch"),
        ("12:00", "13:00", "tentative", "Maybe"),
        ("13:00", "14:00", "busy", "Overlap"),
        ("16:00", "17:00", "tentative", "Later"),
        ("17:00", "17:30", "free", "Free time"),
    ):
        sim.outlook.add_event(tenant, ben, {
            "subject": subject, "start": f"2026-03-13T{start}:00", "end": f"2026-03-13T{end}:00",
            "time_zone": PACIFIC, "show_as": show_as})


async def post(client: httpx.AsyncClient, headers: dict[str, str], body: Any,
               **extra: str) -> httpx.Response:
    return await client.post(ACTION, json=body, headers={**headers, **extra})


@pytest.mark.usefixtures("ben_day")
async def test_availability_view_of_a_known_day(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = {"schedules": ["ben@contoso.com"], **window(), "availabilityViewInterval": 60}
    response = await post(client, app_headers, body, Prefer=f'outlook.timezone="{PACIFIC}"')
    assert response.status_code == 200, response.text
    [info] = response.json()["value"]
    assert info["scheduleId"] == "ben@contoso.com"
    assert info["availabilityView"] == "200220010"
    assert [(i["status"], i["start"]["dateTime"][11:16]) for i in info["scheduleItems"]] == [
        ("busy", "08:30"), ("tentative", "12:00"), ("busy", "12:00"), ("busy", "13:00"),
        ("tentative", "16:00")]
    assert info["scheduleItems"][0]["start"]["timeZone"] == PACIFIC
    assert info["workingHours"]["timeZone"] == {"name": PACIFIC}


@pytest.mark.usefixtures("ben_day")
async def test_request_and_answer_match_the_schemas_and_the_documented_example(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = {"schedules": ["ben@contoso.com", "anna@contoso.com"], **window(),
            "availabilityViewInterval": 60}
    validator("actions/getSchedule.request.json").validate(body)
    answer = (await post(client, app_headers, body)).json()
    check_collection(answer, "types/scheduleInformation.json")
    documented = fixture("calendar-getschedule.response.json")
    assert shape(answer["value"][0]) == shape(documented["value"][0])
    assert answer["@odata.context"].endswith("$metadata#Collection("
                                             "microsoft.graph.scheduleInformation)")


async def test_oof_working_elsewhere_free_and_cancelled_slots(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    def meeting(start: str, show_as: str, **extra: Any) -> str:
        return sim.outlook.add_event(tenant, anna, {
            "start": f"2026-01-05T{start}:00Z", "duration": "30m", "show_as": show_as,
            "organizer": "ben@contoso.com", **extra}).id

    meeting("09:00", "oof")
    meeting("09:30", "workingElsewhere")
    meeting("10:00", "free")
    meeting("10:30", "busy", sensitivity="private", subject="Secret")
    cancelled = meeting("11:00", "busy")
    sim.outlook.cancel_event(tenant, anna, cancelled)
    body = {"schedules": ["anna@contoso.com"], **window("2026-01-05", "09:00:00", "11:30:00",
                                                        "UTC")}
    [info] = (await post(client, app_headers, body)).json()["value"]
    assert info["availabilityView"] == "34020"
    private = next(i for i in info["scheduleItems"] if i["status"] == "busy")
    assert private["isPrivate"] is True
    assert "subject" not in private


async def test_unknown_address_gets_an_error_item_not_a_failure(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = {"schedules": ["ghost@contoso.com", "anna@contoso.com"], **window()}
    response = await post(client, app_headers, body)
    assert response.status_code == 200
    ghost, anna = response.json()["value"]
    assert ghost["scheduleId"] == "ghost@contoso.com"
    assert ghost["error"]["responseCode"] == "5009"
    assert "ghost@contoso.com" in ghost["error"]["message"]
    assert "error" not in anna
    assert anna["availabilityView"] == "0" * 18  # default interval of 30 minutes


async def test_pascal_case_parameters_of_the_metadata_are_accepted(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = {"Schedules": ["anna@contoso.com"],
            "StartTime": {"dateTime": "2026-01-05T09:00:00", "timeZone": "UTC"},
            "EndTime": {"dateTime": "2026-01-05T10:00:00", "timeZone": "UTC"},
            "AvailabilityViewInterval": "15"}
    response = await post(client, app_headers, body)
    assert response.json()["value"][0]["availabilityView"] == "0000"


@pytest.mark.parametrize(("change", "code"), [
    ({"schedules": [f"u{i}@contoso.com" for i in range(21)]}, "ErrorMailboxDataArrayTooBig"),
    ({"availabilityViewInterval": 4}, "ErrorInvalidMergedFreeBusyInterval"),
    ({"availabilityViewInterval": 1441}, "ErrorInvalidMergedFreeBusyInterval"),
    ({"endTime": {"dateTime": "2026-03-13T08:00:00", "timeZone": PACIFIC}},
     "ErrorInvalidTimeInterval"),
    ({"endTime": {"dateTime": "2026-05-15T09:00:00", "timeZone": PACIFIC}},
     "ErrorTimeIntervalTooBig"),
    ({"startTime": {"dateTime": "2026-03-13T09:00:00", "timeZone": "Nowhere"}},
     "TimeZoneNotSupportedException"),
    ({"schedules": "anna@contoso.com"}, "ErrorInvalidParameter"),
    ({"startTime": None}, "ErrorInvalidParameter"),
])
async def test_limits_and_bad_parameters(
    client: httpx.AsyncClient, app_headers: dict[str, str], change: dict[str, Any], code: str,
) -> None:
    body = {"schedules": ["anna@contoso.com"], **window(), **change}
    response = await post(client, app_headers, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_sixty_two_days_is_the_longest_window(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = {"schedules": ["anna@contoso.com"], "availabilityViewInterval": 1440,
            "startTime": {"dateTime": "2026-01-01T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2026-03-04T00:00:00", "timeZone": "UTC"}}
    response = await post(client, app_headers, body)
    assert response.status_code == 200
    assert len(response.json()["value"][0]["availabilityView"]) == 62
    body["endTime"] = {"dateTime": "2026-03-05T00:00:00", "timeZone": "UTC"}
    too_long = await post(client, app_headers, body)
    assert too_long.json()["error"]["message"].endswith(
        "The allowed limit = 62 days; the actual limit = 63 days.")


async def test_malformed_json_and_wrong_content_type(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    broken = await client.post(ACTION, content=b'{"schedules": [', headers={
        **app_headers, "Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "BadRequest"
    text = await client.post(ACTION, content=b"schedules=anna", headers={
        **app_headers, "Content-Type": "text/plain"})
    assert text.status_code == 400
    assert "Content-Type" in text.json()["error"]["message"]


async def test_permissions_for_get_schedule(
    sim: Simulator, client: httpx.AsyncClient, anna_headers: dict[str, str],
) -> None:
    body = {"schedules": ["ben@contoso.com"], **window()}
    no_calendar = bearer(app_token(sim, ["User.Read.All"]))
    denied = await post(client, no_calendar, body)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ErrorAccessDenied"
    mine = await client.post("/v1.0/me/calendar/getSchedule", json=body, headers=anna_headers)
    assert mine.status_code == 200
    assert mine.json()["value"][0]["scheduleId"] == "ben@contoso.com"


async def test_schedules_are_found_by_mail_and_proxy_address(
    tenant: Tenant, anna: User, client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    anna.proxy_addresses.append("smtp:anna.schmidt@contoso.com")
    tenant.touch_user(anna)
    body = {"schedules": ["Anna.Schmidt@contoso.com", "ANNA@contoso.com"], **window()}
    value = (await post(client, app_headers, body)).json()["value"]
    assert [("error" in info) for info in value] == [False, False]
    assert [info["scheduleId"] for info in value] == body["schedules"]
