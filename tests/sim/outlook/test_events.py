"""GET /events and /events/{id}: singles and series masters, occurrences by id, bad ids."""

from __future__ import annotations

import httpx

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.outlook.conftest import view_params


async def test_events_list_masters_and_singles_but_not_occurrences(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    single = sim.outlook.add_event(tenant, anna, {"subject": "One", "start_in": "1h"})
    series = sim.outlook.add_event(tenant, anna, {
        "subject": "Daily", "start": "2026-01-05T12:00:00Z", "duration": "15m",
        "recurrence": {"type": "daily", "count": 5}})
    body = (await client.get("/v1.0/users/anna@contoso.com/events", headers=app_headers)).json()
    kinds = {e["id"]: e["type"] for e in body["value"]}
    assert kinds == {single.id: "singleInstance", series.id: "seriesMaster"}
    master = next(e for e in body["value"] if e["id"] == series.id)
    assert master["recurrence"]["pattern"]["type"] == "daily"
    assert master["recurrence"]["range"]["numberOfOccurrences"] == 5


async def test_single_event_and_occurrence_are_found_by_id(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    series = sim.outlook.add_event(tenant, anna, {
        "subject": "Daily", "start": "2026-01-05T12:00:00Z", "duration": "15m",
        "recurrence": {"type": "daily", "count": 5}})
    view = (await client.get("/v1.0/users/anna@contoso.com/calendarView", params=view_params(
        "2026-01-07T00:00:00Z", "2026-01-08T00:00:00Z"), headers=app_headers)).json()
    [occurrence] = view["value"]
    fetched = await client.get(f"/v1.0/users/anna@contoso.com/events/{occurrence['id']}",
                               headers=app_headers)
    assert fetched.status_code == 200
    assert fetched.json()["start"] == occurrence["start"]
    assert fetched.json()["seriesMasterId"] == series.id
    master = await client.get(f"/v1.0/users/{anna.id}/calendar/events/{series.id}",
                              params={"$select": "subject"}, headers=app_headers)
    assert set(master.json()) == {"@odata.context", "@odata.etag", "id", "subject"}


async def test_unknown_and_malformed_event_ids(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    missing = await client.get("/v1.0/users/anna@contoso.com/events/AAMkAGnothing",
                               headers=app_headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"
    malformed = await client.get("/v1.0/users/anna@contoso.com/events/42", headers=app_headers)
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "ErrorInvalidIdMalformed"


async def test_events_unsupported_query_options_are_refused_not_ignored(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    for params in ({"$filter": "subject eq 'x'"}, {"$expand": "attachments"},
                   {"$top": "ten"}, {"$orderby": "colour"}):
        response = await client.get("/v1.0/users/anna@contoso.com/events", params=params,
                                    headers=app_headers)
        assert response.status_code == 400, params
        assert set(response.json()["error"]) == {"code", "message", "innerError"}
