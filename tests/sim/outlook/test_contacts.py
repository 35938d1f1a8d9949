"""Contacts: folders, $filter, $search, $orderby, paging, $select, permissions, schemas."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.outlook.schemas import check_collection, fixture, shape

CONTACTS = "/v1.0/users/anna@contoso.com/contacts"


@pytest.fixture
def address_book(sim: Simulator, tenant: Tenant, anna: User) -> None:
    """Anna's contacts: three in the default folder, one in 'Suppliers'."""
    for entry in (
        {"display_name": "Pavel Bansky", "given_name": "Pavel", "surname": "Bansky",
         "company": "Fabrikam", "emails": [{"name": "Pavel", "address": "pavelb@fabrikam.com"}],
         "business_phones": ["+1 732 555 0102"]},
        {"given_name": "Dana", "surname": "Swope", "company": "Contoso Ltd",
         "emails": ["dana@contoso.org"], "mobile_phone": "+49 170 5550100"},
        {"display_name": "Anders Berg", "given_name": "Anders", "surname": "Berg",
         "emails": ["anders@berg.se"]},
        {"display_name": "Supplier Sam", "folder": "Suppliers", "emails": ["sam@supply.com"]},
    ):
        sim.outlook.add_contact(tenant, anna, entry)


async def names(client: httpx.AsyncClient, headers: dict[str, str], url: str = CONTACTS,
                **params: Any) -> list[str]:
    response = await client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [c["displayName"] for c in response.json()["value"]]


@pytest.mark.usefixtures("address_book")
async def test_default_folder_named_folders_and_the_well_known_name(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    assert await names(client, app_headers) == ["Pavel Bansky", "Dana Swope", "Anders Berg"]
    folders = (await client.get("/v1.0/users/anna@contoso.com/contactFolders",
                                headers=app_headers)).json()["value"]
    assert [f["displayName"] for f in folders] == ["Suppliers"]
    supplier_url = f"/v1.0/users/anna@contoso.com/contactFolders/{folders[0]['id']}/contacts"
    assert await names(client, app_headers, supplier_url) == ["Supplier Sam"]
    default_url = "/v1.0/users/anna@contoso.com/contactfolders/contacts/contacts"
    assert await names(client, app_headers, default_url) == [
        "Pavel Bansky", "Dana Swope", "Anders Berg"]
    default = (await client.get("/v1.0/users/anna@contoso.com/contactFolders/contacts",
                                headers=app_headers)).json()
    assert folders[0]["parentFolderId"] == default["id"]


@pytest.mark.usefixtures("address_book")
@pytest.mark.parametrize(("expression", "expected"), [
    ("emailAddresses/any(a:a/address eq 'PAVELB@fabrikam.com')", ["Pavel Bansky"]),
    ("startswith(displayName,'a')", ["Anders Berg"]),
    ("givenName eq 'Dana'", ["Dana Swope"]),
    ("startswith(surname,'B')", ["Pavel Bansky", "Anders Berg"]),
    ("displayName eq 'Supplier Sam'", []),
])
async def test_filters(client: httpx.AsyncClient, app_headers: dict[str, str],
                       expression: str, expected: list[str]) -> None:
    assert await names(client, app_headers, **{"$filter": expression}) == expected


@pytest.mark.usefixtures("address_book")
async def test_unsupported_filters_are_refused_with_outlooks_error(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    for expression, code in (("emailAddresses/any(a:a/name eq 'Pavel')",
                              "ErrorInvalidUrlQueryFilter"),
                             ("mobilePhone eq '+49 170 5550100'", "ErrorInvalidUrlQueryFilter"),
                             ("displayName eq 'unterminated", "BadRequest")):
        response = await client.get(CONTACTS, params={"$filter": expression},
                                    headers=app_headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == code


@pytest.mark.usefixtures("address_book")
async def test_search_orderby_and_their_combination(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    assert await names(client, app_headers, **{"$search": '"fabrikam"'}) == ["Pavel Bansky"]
    assert await names(client, app_headers, **{"$search": '"dan swo"'}) == ["Dana Swope"]
    assert await names(client, app_headers, **{"$orderby": "displayName"}) == [
        "Anders Berg", "Dana Swope", "Pavel Bansky"]
    assert await names(client, app_headers, **{"$orderby": "surname desc"}) == [
        "Dana Swope", "Anders Berg", "Pavel Bansky"]
    both = await client.get(CONTACTS, params={"$search": "pav", "$orderby": "displayName"},
                            headers=app_headers)
    assert both.status_code == 400


async def test_paging_count_and_select(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    for index in range(23):
        sim.outlook.add_contact(tenant, anna, {"display_name": f"Person {index:02d}"})
    first = (await client.get(CONTACTS, params={"$top": "10", "$count": "true",
                                                "$orderby": "displayName desc",
                                                "$select": "displayName,mobilePhone"},
                              headers=app_headers)).json()
    assert first["@odata.count"] == 23
    assert set(first["value"][0]) == {"@odata.etag", "id", "displayName", "mobilePhone"}
    collected = [c["displayName"] for c in first["value"]]
    link = first.get("@odata.nextLink")
    while link:
        page = (await client.get(link, headers=app_headers)).json()
        collected += [c["displayName"] for c in page["value"]]
        link = page.get("@odata.nextLink")
    assert collected == [f"Person {index:02d}" for index in reversed(range(23))]


@pytest.mark.usefixtures("address_book")
async def test_single_contact_and_missing_ones(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    contact = next(iter(sim.outlook.mailbox(tenant.id, anna.id).contacts.values()))
    found = await client.get(f"{CONTACTS}/{contact.id}", headers=app_headers)
    assert found.json()["displayName"] == contact.display_name
    missing = await client.get(f"{CONTACTS}/AAMkAGgone", headers=app_headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "ErrorItemNotFound")
    folder = await client.get("/v1.0/users/anna@contoso.com/contactFolders/AAMkAFnone",
                              headers=app_headers)
    assert folder.status_code == 404


@pytest.mark.usefixtures("address_book")
async def test_answers_match_the_contact_schema_and_the_fixture_shape(
    client: httpx.AsyncClient, app_headers: dict[str, str],
) -> None:
    body = (await client.get(CONTACTS, headers=app_headers)).json()
    check_collection(body, "types/contact.json")
    documented = fixture("contacts-list.response.json")["value"][0]
    pavel = body["value"][0]
    # mobilePhone is null in the fixture and in Pavel's contact alike.
    assert {k: shape(pavel[k]) for k in documented} == shape(documented)


@pytest.mark.usefixtures("address_book")
async def test_contact_permissions(sim: Simulator, client: httpx.AsyncClient) -> None:
    without = await client.get(CONTACTS, headers=bearer(app_token(sim, ["Calendars.Read"])))
    assert (without.status_code, without.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    anna = bearer(user_token(sim, "anna@contoso.com", ["Contacts.Read"]))
    assert (await client.get("/v1.0/me/contacts", headers=anna)).status_code == 200
    other = await client.get("/v1.0/users/ben@contoso.com/contacts", headers=anna)
    assert other.status_code == 403
    app_me = await client.get("/v1.0/me/contacts",
                              headers=bearer(app_token(sim, ["Contacts.Read"])))
    assert app_me.status_code == 400
    assert "delegated" in app_me.json()["error"]["message"]
    nobody = await client.get("/v1.0/users/nobody@contoso.com/contacts",
                              headers=bearer(app_token(sim, ["Contacts.Read"])))
    assert (nobody.status_code, nobody.json()["error"]["code"]) == (404, "ErrorInvalidUser")
    unsigned = await client.get(CONTACTS)
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (
        401, "InvalidAuthenticationToken")


@pytest.mark.usefixtures("address_book")
async def test_contact_ids_are_shaped_like_exchanges_per_mailbox_and_folder(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
    app_headers: dict[str, str],
) -> None:
    listed = (await client.get(CONTACTS, headers=app_headers)).json()["value"]
    ids = [contact["id"] for contact in listed]
    assert all(len(id) == 152 and id.startswith("AAMk") for id in ids)
    # One folder's ids differ only in their tail, another folder's from its folder part on.
    assert shared(*ids) >= 135
    box = sim.outlook.mailbox(tenant.id, anna.id)
    supplier = next(c.id for c in box.contacts.values() if c.display_name == "Supplier Sam")
    assert 100 <= shared(ids[0], supplier) < 120
    found = await client.get(f"{CONTACTS}/{supplier}", headers=app_headers)
    assert found.json()["displayName"] == "Supplier Sam"


def shared(*ids: str) -> int:
    """How many leading characters all `ids` have in common."""
    return next((at for at, chars in enumerate(zip(*ids, strict=False))
                 if len(set(chars)) > 1), min(map(len, ids)))
