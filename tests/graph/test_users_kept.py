"""What the directory keeps of each Teams user (memory of a 50,000-user directory)."""

from __future__ import annotations

from m365pbx.graph.users import only

PLAN = {"service": "TeamspaceAPI", "capabilityStatus": "Enabled",
        "servicePlanId": "57ff2da0-773e-42df-b2af-ffb7a2317929",
        "assignedDateTime": "2020-01-01T00:00:00Z"}
KEEP = {"id", "assignedPlans"}


def test_users_with_the_same_plans_share_one_list_of_them() -> None:
    anna = only({"id": "a", "assignedPlans": [dict(PLAN)]}, KEEP)
    ben = only({"id": "b", "assignedPlans": [dict(PLAN)]}, KEEP)
    off = only({"id": "c", "assignedPlans": [{**PLAN, "capabilityStatus": "Suspended"}]}, KEEP)
    assert anna["assignedPlans"] == [{"service": "TeamspaceAPI", "capabilityStatus": "Enabled"}]
    assert anna["assignedPlans"] is ben["assignedPlans"]
    assert off["assignedPlans"] is not anna["assignedPlans"]
    assert off["assignedPlans"][0]["capabilityStatus"] == "Suspended"


def test_an_odd_plan_is_kept_as_it_is() -> None:
    odd = only({"id": "d", "assignedPlans": [{"service": ["not", "a", "string"]}, "x"]}, KEEP)
    assert odd["assignedPlans"] == [{"service": ["not", "a", "string"]}, "x"]
