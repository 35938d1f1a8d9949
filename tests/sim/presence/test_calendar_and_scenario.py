"""Calendar-driven presence (the outlook part's hook) and scenario loading."""

from __future__ import annotations

import pytest

from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.scenario import ScenarioError, load_scenario
from m365sim.simulator import SimSettings, Simulator
from tests.sim.conftest import APP_ID, CONTOSO
from tests.sim.presence.conftest import shown


def test_meeting_shows_busy_in_a_meeting_and_ends_cleanly(
    sim: Simulator, tenant: Tenant, anna: User, changes: list[ResourceChange],
) -> None:
    sim.presence.set_calendar_activity(tenant.id, anna.id, "InAMeeting")
    assert shown(sim, tenant, anna) == ("Busy", "InAMeeting")
    sim.presence.set_calendar_activity(tenant.id, anna.id, None)
    assert shown(sim, tenant, anna) == ("Available", "Available")
    assert [c.resource_data["activity"] for c in changes] == ["InAMeeting", "Available"]


def test_a_call_outranks_a_meeting_and_a_preferred_presence_outranks_both(
    sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    sim.presence.set_calendar_activity(tenant.id, anna.id, "InAMeeting")
    sim.presence.set_presence(tenant.id, anna.id, APP_ID, ("Busy", "InACall"), 300_000_000)
    assert shown(sim, tenant, anna) == ("Busy", "InACall")
    sim.presence.set_preferred(tenant.id, anna.id, ("Available", "Available"), None, "t")
    assert shown(sim, tenant, anna) == ("Available", "Available")


def test_out_of_office_sets_the_flag_and_the_activity(
    sim: Simulator, tenant: Tenant, anna: User, changes: list[ResourceChange],
) -> None:
    sim.presence.set_calendar_activity(tenant.id, anna.id, "OutOfOffice")
    body = sim.presence.read(tenant, anna.id)
    assert body is not None
    assert (body["availability"], body["activity"]) == ("Available", "OutOfOffice")
    assert body["outOfOfficeSettings"] == {"message": None, "isOutOfOffice": True}
    assert changes[-1].resource_data["outOfOfficeSettings"]["isOutOfOffice"] is True
    sim.presence.sign_out(tenant.id, anna.id)
    assert shown(sim, tenant, anna) == ("Offline", "OutOfOffice")


def test_meeting_of_a_signed_out_user_stays_offline_and_is_silent(
    sim: Simulator, tenant: Tenant, anna: User, changes: list[ResourceChange],
) -> None:
    sim.presence.sign_out(tenant.id, anna.id)
    changes.clear()
    sim.presence.set_calendar_activity(tenant.id, anna.id, "InAMeeting")
    assert shown(sim, tenant, anna) == ("Offline", "Offline")
    assert changes == []


def test_unknown_calendar_activity_is_a_programming_error(
    sim: Simulator, tenant: Tenant, anna: User,
) -> None:
    with pytest.raises(ValueError, match="calendar activity"):
        sim.presence.set_calendar_activity(tenant.id, anna.id, "Busy")


def scenario_with(presence: object) -> dict[str, object]:
    user = {"upn": "zoe@contoso.com", "display_name": "Zoe", "presence": presence}
    tenant = {**CONTOSO["tenants"][0], "users": [user]}
    return {"tenants": [tenant]}


@pytest.mark.parametrize(("presence", "expected"), [
    ("signed-in", ("Available", "Available")),
    ("signed-out", ("Offline", "Offline")),
    (None, ("Offline", "Offline")),
    ({"availability": "Busy", "activity": "InAMeeting"}, ("Busy", "InAMeeting")),
    ({"availability": "Away", "activity": "Away",
      "preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}},
     ("DoNotDisturb", "DoNotDisturb")),
])
def test_scenario_presence_values(presence: object, expected: tuple[str, str]) -> None:
    sim = Simulator(settings=SimSettings(base_url="https://sim.test"))
    [tenant] = load_scenario(sim, scenario_with(presence))
    zoe = tenant.find_user("zoe@contoso.com")
    assert zoe is not None
    assert shown(sim, tenant, zoe) == expected


def test_scenario_status_message_and_bad_values() -> None:
    sim = Simulator(settings=SimSettings(base_url="https://sim.test"))
    [tenant] = load_scenario(sim, scenario_with({"availability": "Available",
                                                 "activity": "Available",
                                                 "status_message": "Hello"}))
    zoe = tenant.find_user("zoe@contoso.com")
    assert zoe is not None
    assert (sim.presence.read(tenant, zoe.id) or {})["statusMessage"] == {
        "message": {"content": "Hello", "contentType": "text"}}
    for bad in ("online", 5, {"availability": "Offline", "activity": "OffWork"},
                {"preferred": {"availability": "Busy", "activity": "InACall"}}):
        with pytest.raises(ScenarioError, match=r"zoe@contoso\.com"):
            load_scenario(Simulator(settings=SimSettings(base_url="https://sim.test")),
                          scenario_with(bad))
