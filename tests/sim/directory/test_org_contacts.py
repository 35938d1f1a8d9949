"""/contacts: the tenant's organisational contacts (orgcontact-list.md)."""

from __future__ import annotations

import httpx

from m365sim.directory.org_contacts import add_org_contact, remove_org_contact
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token
from tests.sim.directory.schemas import check_error, validator


async def test_org_contacts_are_listed_paged_and_filtered_with_their_phones(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant
) -> None:
    hotline = add_org_contact(sim, tenant, {
        "display_name": "Fabrikam Hotline", "mail": "hotline@fabrikam.com",
        "company_name": "Fabrikam", "phones": [{"type": "business", "number": "+49 30 555"},
                                               {"type": "businessFax", "number": "+49 30 556"}]})
    for number in range(3):
        add_org_contact(sim, tenant, {"display_name": f"Supplier {number}"})
    headers = bearer(app_token(sim, ["OrgContact.Read.All"]))
    body = (await client.get("/v1.0/contacts?$top=2", headers=headers)).json()
    assert len(body["value"]) == 2 and "@odata.nextLink" in body
    rest = (await client.get(body["@odata.nextLink"], headers=headers)).json()
    assert len(rest["value"]) == 2 and "@odata.nextLink" not in rest
    chosen = (await client.get("/v1.0/contacts?$filter=startswith(displayName,'fab')"
                               "&$select=id,displayName,mail,phones",
                               headers=headers)).json()
    assert chosen["@odata.context"].endswith("#contacts(id,displayName,mail,phones)")
    assert chosen["value"] == [{
        "id": hotline.id, "displayName": "Fabrikam Hotline", "mail": "hotline@fabrikam.com",
        "phones": [{"type": "business", "number": "+49 30 555"},
                   {"type": "businessFax", "number": "+49 30 556"}]}]
    for phone in chosen["value"][0]["phones"]:
        validator("types/phone.json").validate(phone)
    one = (await client.get(f"/v1.0/contacts/{hotline.id}", headers=headers)).json()
    assert one["mailNickname"] == "hotline" and one["companyName"] == "Fabrikam"
    assert remove_org_contact(sim, tenant, hotline.id)
    gone = await client.get(f"/v1.0/contacts/{hotline.id}", headers=headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Request_ResourceNotFound"


async def test_org_contacts_need_org_contact_or_directory_read(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant
) -> None:
    add_org_contact(sim, tenant, {"display_name": "Fabrikam Hotline"})
    denied = await client.get("/v1.0/contacts", headers=bearer(app_token(sim, ["User.Read.All"])))
    assert denied.status_code == 403
    check_error(denied.json())
    directory = await client.get("/v1.0/contacts",
                                 headers=bearer(app_token(sim, ["Directory.Read.All"])))
    assert [c["displayName"] for c in directory.json()["value"]] == ["Fabrikam Hotline"]
    delegated = await client.get("/v1.0/contacts", headers=bearer(
        user_token(sim, "anna@contoso.com", ["Contacts.Read"])))
    assert delegated.status_code == 403
