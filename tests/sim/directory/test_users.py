"""GET /users, /users/{id}, /me, /users/$count: properties, paging, counting, permissions."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from m365sim.directory.changes import create_user, delete_user
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.directory.conftest import EVENTUAL
from tests.sim.directory.schemas import check_error, check_user_collection, fixture, validator

DEFAULT_PROPERTIES = {"businessPhones", "displayName", "givenName", "id", "jobTitle", "mail",
                      "mobilePhone", "officeLocation", "preferredLanguage", "surname",
                      "userPrincipalName"}


async def all_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str]
                    ) -> list[dict[str, object]]:
    pages = []
    while url:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = response.json().get("@odata.nextLink", "")
    return pages


async def test_without_select_graph_returns_exactly_the_default_properties(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    response = await client.get("/v1.0/users", headers={**app_headers,
                                                        "client-request-id": "abc-123"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json;odata.metadata=minimal")
    assert response.headers["request-id"] != "abc-123"
    assert response.headers["client-request-id"] == "abc-123"
    body = response.json()
    assert body["@odata.context"] == "https://sim.test/v1.0/$metadata#users"
    assert {user["userPrincipalName"] for user in body["value"]} >= {"anna@contoso.com",
                                                                      "off@contoso.com"}
    for user in body["value"]:
        assert set(user) == DEFAULT_PROPERTIES
    check_user_collection(body, strict=True)


async def test_select_has_the_shape_of_the_documented_list_page(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    expected = fixture("users-list-page.response.json")
    select = parse_qs(urlsplit(expected["@odata.nextLink"]).query)["$select"][0]
    response = await client.get(f"/v1.0/users?$select={select}&$count=true&$top=2",
                                headers={**app_headers, **EVENTUAL})
    body = response.json()
    assert set(body) == set(expected)
    assert body["@odata.context"].endswith(expected["@odata.context"].rsplit("/", 1)[1])
    assert [list(user) for user in body["value"]] == [list(user) for user in expected["value"]]
    assert body["@odata.count"] == 5
    check_user_collection(body, strict=True)


async def test_property_names_are_case_insensitive_and_returned_in_graph_spelling(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    response = await client.get("/v1.0/users?$select=ID,proxyaddresses,AccountEnabled",
                                headers=app_headers)
    user = response.json()["value"][0]
    assert list(user) == ["id", "proxyAddresses", "accountEnabled"]
    assert response.json()["@odata.context"].endswith("#users(id,proxyAddresses,accountEnabled)")


async def test_unknown_select_property_is_refused_with_the_odata_parser_error(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    response = await client.get("/v1.0/users?$select=id,favouriteColour", headers=app_headers)
    assert response.status_code == 400
    body = response.json()
    check_error(body)
    assert body["error"]["code"] == "BadRequest"
    assert "Could not find a property named 'favouriteColour' on type 'microsoft.graph.user'" \
        in body["error"]["message"]


async def test_unmodelled_properties_come_back_null_and_sharepoint_ones_are_not_listable(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    body = (await client.get("/v1.0/users?$select=id,city,otherMails",
                             headers=app_headers)).json()
    assert all(u["city"] is None and u["otherMails"] == [] for u in body["value"])
    refused = await client.get("/v1.0/users?$select=id,skills", headers=app_headers)
    assert refused.status_code == 501
    assert refused.json()["error"]["code"] == "NotImplemented"


async def test_paging_follows_absolute_next_links_and_covers_every_user_once(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    pages = await all_pages(client, "/v1.0/users?$select=id&$top=100", app_headers)
    assert [len(page["value"]) for page in pages] == [100, 100, 55]  # type: ignore[arg-type]
    link = pages[0]["@odata.nextLink"]
    assert isinstance(link, str) and link.startswith("https://sim.test/v1.0/users?")
    assert "$skiptoken=" in link and "$select=id" in link and "$top=100" in link
    ids = [u["id"] for page in pages for u in page["value"]]  # type: ignore[attr-defined]
    assert len(ids) == len(set(ids)) == len(crowd.users)


async def test_paging_keeps_its_place_when_a_user_is_added_between_pages(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, crowd: Tenant
) -> None:
    first = (await client.get("/v1.0/users?$select=id&$top=100", headers=app_headers)).json()
    before = {u.id for u in crowd.users.values()}
    create_user(sim, crowd, {"userPrincipalName": "zz.late@contoso.com", "id": "00000000-0000"
                             "-4000-8000-000000000001"})
    rest = await all_pages(client, first["@odata.nextLink"], app_headers)
    seen = [u["id"] for u in first["value"]] + [
        u["id"] for page in rest for u in page["value"]]  # type: ignore[attr-defined]
    assert len(seen) == len(set(seen))
    assert before <= set(seen)


async def test_a_tampered_skiptoken_is_refused(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    link = (await client.get("/v1.0/users?$top=10", headers=app_headers)).json()[
        "@odata.nextLink"]
    token = parse_qs(urlsplit(link).query)["$skiptoken"][0]
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    response = await client.get(f"/v1.0/users?$top=10&$skiptoken={forged}",
                                headers=app_headers)
    assert response.status_code == 400
    check_error(response.json())


async def test_count_needs_the_consistency_header_and_is_on_the_first_page_only(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    ignored = (await client.get("/v1.0/users?$count=true&$top=5", headers=app_headers)).json()
    assert "@odata.count" not in ignored  # silently ignored (aad-advanced-queries.md)
    first = (await client.get("/v1.0/users?$count=true&$top=200&$filter=accountEnabled eq true",
                              headers={**app_headers, **EVENTUAL})).json()
    enabled = sum(1 for u in crowd.users.values() if u.account_enabled)
    assert first["@odata.count"] == enabled
    second = (await client.get(first["@odata.nextLink"],
                               headers={**app_headers, **EVENTUAL})).json()
    assert "@odata.count" not in second
    assert len(first["value"]) + len(second["value"]) == enabled


async def test_count_segment_needs_advanced_query_parameters(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    refused = await client.get("/v1.0/users/$count", headers=app_headers)
    assert refused.status_code == 400
    assert refused.json()["error"] == {**refused.json()["error"], "code": "Request_BadRequest",
                                       "message": "$count is not currently supported."}
    counted = await client.get("/v1.0/users/$count", headers={**app_headers, **EVENTUAL})
    assert counted.status_code == 200 and counted.text == "5"


async def test_top_bounds_skip_and_unknown_options_are_refused(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    for query, code in (("$top=0", "Request_BadRequest"), ("$top=1000", "Request_BadRequest"),
                        ("$top=ten", "BadRequest"), ("$skip=5", "Request_BadRequest"),
                        ("$frobnicate=1", "BadRequest"), ("$top=1&$top=2", "BadRequest"),
                        ("$count=maybe", "BadRequest")):
        response = await client.get(f"/v1.0/users?{query}", headers=app_headers)
        assert response.status_code == 400, query
        assert response.json()["error"]["code"] == code, query
    assert (await client.get("/v1.0/users?$top=999", headers=app_headers)).status_code == 200


async def test_search_needs_the_header_then_matches_word_prefixes_in_any_order(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    refused = await client.get('/v1.0/users?$search="displayName:anna"', headers=app_headers)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_UnsupportedQuery"
    assert "ConsistencyLevel: eventual" in refused.json()["error"]["message"]
    create_user(sim, tenant, {"userPrincipalName": "jm@contoso.com",
                              "displayName": "Jörg MüllerLüdenscheidt"})

    async def names(search: str) -> set[str]:
        response = await client.get(f"/v1.0/users?$search={search}&$select=displayName",
                                    headers={**app_headers, **EVENTUAL})
        assert response.status_code == 200, response.text
        return {u["displayName"] for u in response.json()["value"]}

    assert await names('"displayName:schm"') == {"Anna Schmidt"}
    assert await names('"displayName:schmidt an"') == {"Anna Schmidt"}
    assert await names('"displayName:lüden"') == {"Jörg MüllerLüdenscheidt"}
    assert await names('"displayName:idt"') == set()
    assert await names('"mail:ben@"') == {"Ben Weber"}
    assert await names('"displayName:anna" OR "mail:ben"') == {"Anna Schmidt", "Ben Weber"}
    assert await names('"displayName:anna" AND "mail:ben"') == set()
    bad = await client.get('/v1.0/users?$search=anna', headers={**app_headers, **EVENTUAL})
    assert bad.status_code == 400


async def test_orderby_display_name_and_its_limits(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    body = (await client.get("/v1.0/users?$orderby=displayName desc&$select=displayName"
                             "&$top=999", headers=app_headers)).json()
    names = [u["displayName"].casefold() for u in body["value"]]
    assert names == sorted(names, reverse=True)
    mixed = await client.get("/v1.0/users?$orderby=displayName&$filter=accountEnabled eq true",
                             headers=app_headers)
    assert mixed.status_code == 400
    assert mixed.json()["error"]["message"] == "Sorting not supported for current query."
    advanced = await client.get("/v1.0/users?$orderby=displayName&$count=true"
                                "&$filter=accountEnabled eq true",
                                headers={**app_headers, **EVENTUAL})
    assert advanced.status_code == 200
    assert (await client.get("/v1.0/users?$orderby=jobTitle",
                             headers=app_headers)).status_code == 400


async def test_permissions_decide_who_may_list_and_what_they_see(
    client: httpx.AsyncClient, sim: Simulator, basic_headers: dict[str, str]
) -> None:
    assert (await client.get("/v1.0/users")).status_code == 401
    denied = await client.get("/v1.0/users",
                              headers=bearer(app_token(sim, ["Presence.ReadWrite.All"])))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert denied.json()["error"]["message"] == \
        "Insufficient privileges to complete the operation."
    basic = (await client.get("/v1.0/users", headers=basic_headers)).json()
    for user in basic["value"]:
        assert set(user) == {"displayName", "givenName", "id", "mail", "surname",
                             "userPrincipalName"}
    hidden = await client.get("/v1.0/users?$filter=accountEnabled eq false",
                              headers=basic_headers)
    assert hidden.status_code == 403
    directory = bearer(app_token(sim, ["Directory.Read.All"]))
    assert (await client.get("/v1.0/users", headers=directory)).status_code == 200


async def test_get_one_user_by_id_or_upn_and_unknown_ones(
    client: httpx.AsyncClient, app_headers: dict[str, str], tenant: Tenant
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    by_id = (await client.get(f"/v1.0/users/{anna.id}", headers=app_headers)).json()
    by_upn = (await client.get("/v1.0/users/ANNA@contoso.com", headers=app_headers)).json()
    assert by_id == by_upn
    assert by_id["@odata.context"] == "https://sim.test/v1.0/$metadata#users/$entity"
    validator("types-strict/user.json").validate(by_id)
    picked = (await client.get(f"/v1.0/users/{anna.id}?$select=businessPhones,accountEnabled",
                               headers=app_headers)).json()
    assert picked["businessPhones"] == ["+49 30 5550201"] and picked["accountEnabled"] is True
    assert picked["@odata.context"].endswith("#users(businessPhones,accountEnabled)/$entity")
    missing = await client.get("/v1.0/users/nobody@contoso.com", headers=app_headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "Request_ResourceNotFound"
    assert missing.json()["error"]["message"] == (
        "Resource 'nobody@contoso.com' does not exist or one of its queried "
        "reference-property objects are not present.")


async def test_me_is_for_delegated_tokens_and_user_read_sees_the_full_own_profile(
    client: httpx.AsyncClient, sim: Simulator, app_headers: dict[str, str]
) -> None:
    app_me = await client.get("/v1.0/me", headers=app_headers)
    assert app_me.status_code == 400
    assert app_me.json()["error"]["message"] == \
        "/me request is only valid with delegated authentication flow."
    own = bearer(user_token(sim, "anna@contoso.com", ["User.Read"]))
    me = (await client.get("/v1.0/me?$select=id,accountEnabled,mobilePhone",
                           headers=own)).json()
    assert set(me) == {"@odata.context", "id", "accountEnabled", "mobilePhone"}
    others = await client.get("/v1.0/users/ben@contoso.com", headers=own)
    assert others.status_code == 403


async def test_disabled_users_are_listed_and_deleted_ones_are_gone(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    body = (await client.get("/v1.0/users?$select=userPrincipalName,accountEnabled",
                             headers=app_headers)).json()
    assert {"userPrincipalName": "off@contoso.com", "accountEnabled": False} in body["value"]
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    delete_user(sim, tenant, ben)
    after = (await client.get("/v1.0/users?$select=userPrincipalName",
                              headers=app_headers)).json()
    assert "ben@contoso.com" not in {u["userPrincipalName"] for u in after["value"]}
    assert (await client.get(f"/v1.0/users/{ben.id}", headers=app_headers)).status_code == 404
