"""Contact delta rounds, and the change notifications events and contacts publish."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID
from tests.sim.outlook.schemas import validator

DELTA = "/v1.0/users/anna@contoso.com/contactFolders/contacts/contacts/delta"


async def run_round(client: httpx.AsyncClient, headers: dict[str, str], url: str,
                    **extra: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = await client.get(url, headers={**headers, **extra})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        pages += 1
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


async def test_delta_rounds_report_changes_then_only_changes(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    made = [sim.outlook.add_contact(tenant, anna, {"display_name": f"C{i}"}) for i in range(5)]
    sim.outlook.add_contact(tenant, anna, {"display_name": "Elsewhere", "folder": "Other"})
    items, delta_link, pages = await run_round(client, app_headers, DELTA + "?$select=displayName",
                                               Prefer="odata.maxpagesize=2")
    assert pages == 3
    assert sorted(i["displayName"] for i in items) == [f"C{i}" for i in range(5)]
    assert set(items[0]) == {"@odata.type", "@odata.etag", "id", "displayName"}

    sim.outlook.update_contact(tenant, anna, made[1].id, {"display_name": "C1 renamed"})
    sim.outlook.delete_contact(tenant, anna, made[2].id)
    sim.outlook.add_contact(tenant, anna, {"display_name": "C5"})
    sim.outlook.add_contact(tenant, anna, {"display_name": "Elsewhere 2", "folder": "Other"})
    changes, delta_link, _ = await run_round(client, app_headers, delta_link)
    assert {c.get("displayName", c["id"]) for c in changes} == {"C1 renamed", made[2].id, "C5"}
    removed = next(c for c in changes if c["id"] == made[2].id)
    assert removed["@removed"] == {"reason": "deleted"}
    assert set(next(c for c in changes if c.get("displayName") == "C5")) == {
        "@odata.type", "@odata.etag", "id", "displayName"}  # $select kept in the token

    quiet, _, _ = await run_round(client, app_headers, delta_link)
    assert quiet == []


async def test_change_during_a_round_does_not_lose_contacts(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    made = [sim.outlook.add_contact(tenant, anna, {"display_name": f"C{i}"}) for i in range(4)]
    first = (await client.get(DELTA, headers={**app_headers,
                                              "Prefer": "odata.maxpagesize=2"})).json()
    # C0 changes between the pages: the rest of the round still holds C2 and C3.
    sim.outlook.update_contact(tenant, anna, made[0].id, {"display_name": "C0 again"})
    items, delta_link, _ = await run_round(client, app_headers, first["@odata.nextLink"])
    assert [i["displayName"] for i in first["value"] + items] == ["C0", "C1", "C2", "C3"]
    later, _, _ = await run_round(client, app_headers, delta_link)
    assert [i["displayName"] for i in later] == ["C0 again"]


async def test_bad_delta_tokens_are_refused(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    for token in ("$deltatoken=not-a-token", "$skiptoken=eyJ4IjoxfQ"):
        response = await client.get(f"{DELTA}?{token}", headers=app_headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "ErrorInvalidSyncStateData"


@pytest.fixture
def published(sim: Simulator) -> list[ResourceChange]:
    """Every change the simulator publishes from now on."""
    changes: list[ResourceChange] = []
    sim.bus.listen(changes.append)
    return changes


async def test_event_changes_are_published_for_subscriptions(
    anna: User, client: httpx.AsyncClient, published: list[ResourceChange],
) -> None:
    base = f"/_sim/tenants/contoso.com/users/{anna.user_principal_name}/events"
    created = (await client.post(base, json={"subject": "Plan", "start_in": "1h",
                                             "duration": "30m", "isOnlineMeeting": True})).json()
    event_id = created["id"]
    await client.patch(f"{base}/{event_id}", json={"subject": "Plan v2"})
    await client.delete(f"{base}/{event_id}")
    assert [c.change_type for c in published] == ["created", "updated", "deleted"]
    for change in published:
        assert change.tenant_id == TENANT_ID
        assert change.resource == f"users/{anna.id}/events/{event_id}"
        assert change.resource_id == event_id
        assert change.odata_type == "#microsoft.graph.event"
        assert change.odata_id == f"Users/{anna.id}/Events/{event_id}"
        assert change.resource_data["id"] == event_id
    assert published[1].resource_data["subject"] == "Plan v2"
    validator("types/event.json").validate(published[0].resource_data)


async def test_attendee_cancel_is_an_update_with_is_cancelled(
    anna: User, client: httpx.AsyncClient, published: list[ResourceChange],
) -> None:
    base = f"/_sim/tenants/{TENANT_ID}/users/{anna.id}/events"
    created = (await client.post(base, json={"subject": "Ben's", "start_in": "1h",
                                             "organizer": "ben@contoso.com"})).json()
    answer = (await client.delete(f"{base}/{created['id']}")).json()
    assert answer["outcome"] == "cancelled"
    assert published[-1].change_type == "updated"
    assert published[-1].resource_data["isCancelled"] is True
    removed = (await client.delete(f"{base}/{created['id']}?remove=true")).json()
    assert removed["outcome"] == "removed"
    assert published[-1].change_type == "deleted"


async def test_contact_changes_are_published(
    anna: User, client: httpx.AsyncClient, published: list[ResourceChange],
) -> None:
    base = f"/_sim/tenants/contoso.com/users/{anna.user_principal_name}/contacts"
    created = await client.post(base, json={"givenName": "Eva", "surname": "Muster",
                                            "emailAddresses": [{"address": "eva@muster.de"}]})
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert created.json()["displayName"] == "Eva Muster"
    changed = await client.patch(f"{base}/{contact_id}", json={"mobilePhone": "+49 1"})
    assert changed.json()["mobilePhone"] == "+49 1"
    assert (await client.delete(f"{base}/{contact_id}")).status_code == 204
    assert [(c.change_type, c.resource) for c in published] == [
        (kind, f"users/{anna.id}/contacts/{contact_id}")
        for kind in ("created", "updated", "deleted")]
    assert {c.odata_type for c in published} == {"#microsoft.graph.contact"}
    validator("types/contact.json").validate(published[0].resource_data)


async def test_scenario_load_publishes_nothing(sim: Simulator,
                                               published: list[ResourceChange]) -> None:
    from m365sim.scenario import load_scenario

    load_scenario(sim, {"tenants": [{"name": "Fabrikam", "domains": ["fabrikam.com"], "users": [
        {"upn": "f@fabrikam.com", "calendar": [{"subject": "x", "start_in": "1h"}],
         "contacts": [{"display_name": "y"}]}]}]})
    assert published == []
