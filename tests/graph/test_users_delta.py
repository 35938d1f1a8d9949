"""`/users/delta` as the directory changes use it, against the simulator (issue 18/10)."""

from __future__ import annotations

import pytest

from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import GraphError
from m365pbx.graph.users import delta_link_expired, users_delta, users_delta_link
from m365sim.directory.changes import create_user, delete_user, update_user
from m365sim.directory.state import directory_state
from m365sim.model import Tenant
from m365sim.simulator import Simulator

KEEP = {"id", "displayName", "accountEnabled", "assignedPlans"}


async def test_a_link_from_now_on_returns_only_later_changes(
    app_client: GraphClient, sim: Simulator, tenant: Tenant,
) -> None:
    link = await users_delta_link(app_client)
    quiet = await users_delta(app_client, link, KEEP)
    assert quiet.changed == [] and quiet.removed == [] and quiet.delta_link
    ben = tenant.find_user("ben@contoso.com")
    anna = tenant.find_user("anna@contoso.com")
    assert ben is not None and anna is not None
    update_user(sim, tenant, ben, {"teams": False})
    delete_user(sim, tenant, anna)
    carl = create_user(sim, tenant, {"userPrincipalName": "carl@contoso.com",
                                     "displayName": "Carl Neumann"})
    changes = await users_delta(app_client, quiet.delta_link, KEEP)
    by_id = {user["id"]: user for user in changes.changed}
    assert set(by_id) == {ben.id, carl.id}
    assert set(by_id[ben.id]) <= KEEP and by_id[ben.id]["assignedPlans"] == []
    assert by_id[carl.id]["assignedPlans"] == [{"service": "TeamspaceAPI",
                                                "capabilityStatus": "Enabled"}]
    assert changes.removed == [anna.id]


async def test_a_reset_link_is_told_apart_from_other_failures(
    app_client: GraphClient, sim: Simulator, tenant: Tenant,
) -> None:
    link = await users_delta_link(app_client)
    directory_state(sim).delta_epoch[tenant.id] += 1  # the control API's delta/reset
    with pytest.raises(GraphError) as caught:
        await users_delta(app_client, link, KEEP)
    assert delta_link_expired(caught.value)
    with pytest.raises(GraphError) as other:
        await users_delta(app_client, link.replace("$deltatoken=", "$deltatoken=x"), KEEP)
    assert not delta_link_expired(other.value)
