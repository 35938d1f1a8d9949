"""/users/delta: rounds, pages, changes, removals, minimal answers, resets and expiry."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from m365sim.clock import VirtualClock
from m365sim.directory.changes import create_user, delete_user, update_user
from m365sim.events import ResourceChange
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.directory.schemas import check_error, check_user_collection, fixture


async def sync(client: httpx.AsyncClient, url: str, headers: dict[str, str]
               ) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        check_user_collection(body)
        pages += 1
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


async def test_first_round_pages_to_a_delta_link_like_the_documented_answers(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    first = (await client.get("/v1.0/users/delta", headers=app_headers)).json()
    page_fixture = fixture("users-delta.response.json")
    assert set(first) == set(page_fixture)
    assert set(first["value"][0]) == set(page_fixture["value"][0])
    items, delta_link, pages = await sync(client, "/v1.0/users/delta?$select=displayName",
                                          app_headers)
    assert pages == 2  # 255 users, 200 per page
    assert len({i["id"] for i in items}) == len(crowd.users)
    assert all(set(i) == {"id", "displayName"} for i in items)
    assert delta_link.startswith("https://sim.test/v1.0/users/delta?$deltatoken=")


async def test_later_rounds_carry_only_changes_with_removals(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    _, link, _ = await sync(client, "/v1.0/users/delta?$select=displayName,accountEnabled",
                            app_headers)
    nothing, link, _ = await sync(client, link, app_headers)
    assert nothing == []
    anna, ben, mia = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben", "mfa"))
    assert anna and ben and mia
    update_user(sim, tenant, anna, {"accountEnabled": False})
    new = create_user(sim, tenant, {"userPrincipalName": "neo@contoso.com",
                                    "displayName": "Neo Anderson"})
    delete_user(sim, tenant, ben)
    delete_user(sim, tenant, mia, permanent=True)
    changes, link, _ = await sync(client, link, app_headers)
    by_id = {item["id"]: item for item in changes}
    assert by_id[anna.id] == {"id": anna.id, "displayName": "Anna Schmidt",
                              "accountEnabled": False}
    assert by_id[new.id]["displayName"] == "Neo Anderson"
    assert by_id[ben.id] == {"id": ben.id, "@removed": {"reason": "changed"}}
    assert by_id[mia.id] == {"id": mia.id, "@removed": {"reason": "deleted"}}
    assert len(changes) == 4
    final_fixture = fixture("users-delta-final.response.json")
    assert set(final_fixture["value"][1]) == set(by_id[ben.id])
    again, _, _ = await sync(client, link, app_headers)
    assert again == []


async def test_prefer_minimal_returns_only_the_changed_properties(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    minimal = {**app_headers, "Prefer": "return=minimal"}
    _, link, _ = await sync(client, "/v1.0/users/delta?$select=displayName,jobTitle,mail",
                            minimal)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    update_user(sim, tenant, anna, {"jobTitle": "Head of Sales"})
    changes, _, _ = await sync(client, link, minimal)
    assert changes == [{"id": anna.id, "jobTitle": "Head of Sales"}]
    full, _, _ = await sync(client, link, app_headers)
    assert full == [{"id": anna.id, "displayName": "Anna Schmidt", "jobTitle": "Head of Sales",
                     "mail": "anna@contoso.com"}]


async def test_latest_token_starts_from_now_and_id_filter_limits_the_round(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    anna, ben = tenant.find_user("anna@contoso.com"), tenant.find_user("ben@contoso.com")
    assert anna and ben
    latest = (await client.get("/v1.0/users/delta?$deltatoken=latest",
                               headers=app_headers)).json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    watched, link, _ = await sync(client, f"/v1.0/users/delta?$filter=id eq '{anna.id}' or "
                                          f"id eq '{ben.id}'", app_headers)
    assert {w["id"] for w in watched} == {anna.id, ben.id}
    update_user(sim, tenant, ben, {"mobilePhone": "+49 170 1234567"})
    outsider = tenant.find_user("mfa@contoso.com")
    assert outsider is not None
    update_user(sim, tenant, outsider, {"jobTitle": "Spy"})
    changes, _, _ = await sync(client, link, app_headers)
    assert [c["id"] for c in changes] == [ben.id]
    since_latest, _, _ = await sync(client, latest["@odata.deltaLink"], app_headers)
    assert {c["id"] for c in since_latest} == {ben.id, outsider.id}


async def test_delta_refuses_what_it_does_not_support(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator
) -> None:
    for query in ("$top=5", "$orderby=displayName", "$filter=displayName eq 'x'",
                  "$filter=" + " or ".join(f"id eq '{n}'" for n in range(51))):
        response = await client.get(f"/v1.0/users/delta?{query}", headers=app_headers)
        assert response.status_code == 400, query
        check_error(response.json())
    basic = bearer(user_token(sim, "ben@contoso.com", ["User.ReadBasic.All"]))
    assert (await client.get("/v1.0/users/delta", headers=basic)).status_code == 403


async def test_a_reset_answers_410_with_a_location_that_restarts_the_sync(
    client: httpx.AsyncClient, app_headers: dict[str, str], tenant: Tenant
) -> None:
    _, link, _ = await sync(client, "/v1.0/users/delta?$select=displayName", app_headers)
    reset = await client.post("/_sim/tenants/contoso.com/delta/reset")
    assert reset.status_code == 200
    gone = await client.get(link, headers=app_headers)
    assert gone.status_code == 410
    check_error(gone.json())
    location = gone.headers["location"]
    assert parse_qs(urlsplit(location).query, keep_blank_values=True)["$deltatoken"] == [""]
    items, _, _ = await sync(client, location, app_headers)
    assert len(items) == len(tenant.users) and set(items[0]) == {"id", "displayName"}


async def test_tokens_expire_after_seven_days_and_forged_ones_are_refused(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, clock: VirtualClock
) -> None:
    _, link, _ = await sync(client, "/v1.0/users/delta", app_headers)
    forged = link.replace("$deltatoken=ey", "$deltatoken=ez")
    refused = await client.get(forged, headers=app_headers)
    assert refused.status_code == 400
    await clock.advance(6 * 86400)
    _, fresh, _ = await sync(client, link, bearer(app_token(sim, ["User.Read.All"])))
    await clock.advance(2 * 86400)
    headers = bearer(app_token(sim, ["User.Read.All"]))
    expired = await client.get(link, headers=headers)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "syncStateNotFound"
    assert (await client.get(fresh, headers=headers)).status_code == 200


async def test_user_changes_are_published_for_subscriptions(
    sim: Simulator, tenant: Tenant
) -> None:
    seen: list[ResourceChange] = []
    sim.bus.listen(seen.append)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    update_user(sim, tenant, anna, {"displayName": "Anna Schmidt-Weber"})
    delete_user(sim, tenant, anna)
    assert [(c.resource, c.change_type) for c in seen] == [
        (f"users/{anna.id}", "updated"), (f"users/{anna.id}", "deleted")]
    assert seen[0].odata_type == "#microsoft.graph.user"
    assert seen[0].resource_data["displayName"] == "Anna Schmidt-Weber"
