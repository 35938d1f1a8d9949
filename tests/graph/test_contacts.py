"""Contact reads through the real client against the simulator (graph/contacts.py)."""

from __future__ import annotations

from m365pbx.graph.client import GraphClient
from m365pbx.graph.contacts import contact_folders, folder_delta, org_contacts
from m365sim.directory.org_contacts import add_org_contact
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID


async def test_every_folder_is_read_then_only_changes(
    sim: Simulator, tenant: Tenant, app_client: GraphClient,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    jurgen = sim.outlook.add_contact(tenant, anna, {
        "display_name": "Jürgen Müller", "company": "Fabrikam",
        "emails": [{"name": "J", "address": "j@fabrikam.de"}],
        "business_phones": ["030 1234567"], "mobile_phone": "0170 5550100"})
    for number in range(120):  # more than one page of 100
        sim.outlook.add_contact(tenant, anna, {"display_name": f"Supplier {number}",
                                               "folder": "Suppliers"})
    folders = await contact_folders(app_client, anna.id)
    assert folders[0] == "contacts" and len(folders) == 2
    first = await folder_delta(app_client, anna.id, "contacts")
    assert [c.display_name for c in first.changed] == ["Jürgen Müller"]
    assert first.changed[0].phones == (("business", "030 1234567"), ("mobile", "0170 5550100"))
    assert first.changed[0].emails == ("j@fabrikam.de",) and first.delta_link
    suppliers = await folder_delta(app_client, anna.id, folders[1])
    assert len(suppliers.changed) == 120
    sim.outlook.update_contact(tenant, anna, jurgen.id, {"display_name": "Jürgen Schulz"})
    added = sim.outlook.add_contact(tenant, anna, {"display_name": "New Person"})
    second = await folder_delta(app_client, anna.id, "contacts", first.delta_link)
    assert sorted(c.display_name for c in second.changed) == ["Jürgen Schulz", "New Person"]
    sim.outlook.delete_contact(tenant, anna, added.id)
    third = await folder_delta(app_client, anna.id, "contacts", second.delta_link)
    assert (third.changed, third.removed) == ([], [added.id])


async def test_org_contacts_are_read_with_their_phones(
    sim: Simulator, tenant: Tenant, app_client: GraphClient,
) -> None:
    tenant.apps[APP_ID].application_roles.add("OrgContact.Read.All")
    add_org_contact(sim, tenant, {"display_name": "Fabrikam Hotline", "mail": "h@fabrikam.com",
                                  "phones": [{"type": "business", "number": "+49 40 55555"}]})
    found = await org_contacts(app_client)
    assert [(c.display_name, c.emails, c.phones) for c in found] == [
        ("Fabrikam Hotline", ("h@fabrikam.com",), (("business", "+49 40 55555"),))]
