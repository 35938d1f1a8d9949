"""Time-driven presence on the virtual clock: fades, expiries and the notifications they cause."""

from __future__ import annotations

from m365sim.clock import VirtualClock
from m365sim.events import ResourceChange
from m365sim.model import Tenant, User
from m365sim.presence.states import AVAILABLE
from m365sim.presence.timefmt import US_PER_MINUTE
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID
from tests.sim.presence.conftest import shown

MINUTE = 60
OTHER_APP = "11111111-2222-3333-4444-555555555555"


def states(changes: list[ResourceChange]) -> list[tuple[str, str]]:
    return [(c.resource_data["availability"], c.resource_data["activity"]) for c in changes]


async def test_available_session_fades_then_expires_with_one_notification_each(
    running: Simulator, clock: VirtualClock, tenant: Tenant, ben: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.sign_out(tenant.id, ben.id)
    changes.clear()
    sim.presence.set_presence(tenant.id, ben.id, APP_ID, AVAILABLE, 60 * US_PER_MINUTE)
    await clock.advance(4 * MINUTE + 59)
    assert states(changes) == [("Available", "Available")]
    await clock.advance(1)
    assert states(changes)[-1] == ("Available", "AvailableInactive")
    await clock.advance(5 * MINUTE)
    assert states(changes)[-1] == ("Away", "Away")
    await clock.advance(50 * MINUTE)
    assert states(changes) == [("Available", "Available"), ("Available", "AvailableInactive"),
                               ("Away", "Away"), ("Offline", "Offline")]
    assert shown(sim, tenant, ben) == ("Offline", "Offline")


async def test_refreshing_before_the_timeout_keeps_available_and_publishes_nothing(
    running: Simulator, clock: VirtualClock, tenant: Tenant, ben: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.sign_out(tenant.id, ben.id)
    sim.presence.set_presence(tenant.id, ben.id, APP_ID, AVAILABLE, 10 * US_PER_MINUTE)
    changes.clear()
    for _ in range(6):
        await clock.advance(4 * MINUTE)
        sim.presence.set_presence(tenant.id, ben.id, APP_ID, AVAILABLE, 10 * US_PER_MINUTE)
    assert changes == []
    assert shown(sim, tenant, ben) == AVAILABLE


async def test_session_expiry_uncovers_the_teams_client_state(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.set_presence(tenant.id, anna.id, APP_ID, ("Busy", "InACall"),
                              5 * US_PER_MINUTE)
    await clock.advance(5 * MINUTE)
    assert states(changes) == [("Busy", "InACall"), ("Available", "Available")]


async def test_preferred_presence_expires_on_the_clock(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.set_preferred(tenant.id, anna.id, ("DoNotDisturb", "DoNotDisturb"),
                               30 * US_PER_MINUTE, "test")
    await clock.advance(29 * MINUTE)
    assert shown(sim, tenant, anna) == ("DoNotDisturb", "DoNotDisturb")
    await clock.advance(MINUTE)
    assert states(changes) == [("DoNotDisturb", "DoNotDisturb"), ("Available", "Available")]


async def test_default_preferred_lifetime_is_one_day_for_busy_and_seven_days_otherwise(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User, ben: User,
) -> None:
    sim = running
    sim.presence.set_preferred(tenant.id, anna.id, ("Busy", "Busy"), None, "test")
    sim.presence.set_preferred(tenant.id, ben.id, ("BeRightBack", "BeRightBack"), None, "test")
    await clock.advance(24 * 3600 - 1)
    assert shown(sim, tenant, anna) == ("Busy", "Busy")
    await clock.advance(1)
    assert shown(sim, tenant, anna) == AVAILABLE
    await clock.advance(6 * 24 * 3600 - 1)
    assert shown(sim, tenant, ben) == ("BeRightBack", "BeRightBack")
    await clock.advance(1)
    assert shown(sim, tenant, ben) == AVAILABLE


async def test_preferred_presence_shows_only_while_a_session_exists(
    sim: Simulator, tenant: Tenant, anna: User, changes: list[ResourceChange],
) -> None:
    sim.presence.sign_out(tenant.id, anna.id)
    sim.presence.set_preferred(tenant.id, anna.id, ("Busy", "Busy"), None, "test")
    assert shown(sim, tenant, anna) == ("Offline", "Offline")
    sim.presence.set_presence(tenant.id, anna.id, APP_ID, ("Away", "Away"), 5 * US_PER_MINUTE)
    assert shown(sim, tenant, anna) == ("Busy", "Busy")
    assert sim.presence.clear_presence(tenant.id, anna.id, APP_ID)
    assert shown(sim, tenant, anna) == ("Offline", "Offline")
    assert states(changes) == [("Offline", "Offline"), ("Busy", "Busy"), ("Offline", "Offline")]


async def test_reads_between_ticks_are_already_right_without_the_timer(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, ben: User,
    changes: list[ResourceChange],
) -> None:
    # sim.presence.run() is not running here: the read itself applies the fade.
    sim.presence.sign_out(tenant.id, ben.id)
    sim.presence.set_presence(tenant.id, ben.id, APP_ID, AVAILABLE, 60 * US_PER_MINUTE)
    await clock.advance(7 * MINUTE)
    first = sim.presence.read(tenant, ben.id)
    assert first is not None
    assert (first["availability"], first["activity"]) == ("Available", "AvailableInactive")
    assert states(changes)[-1] == ("Available", "AvailableInactive")
    again = sim.presence.read(tenant, ben.id)
    assert again == first and len(changes) == 3


async def test_a_new_earlier_deadline_wakes_the_sleeping_timer(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User, ben: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.set_presence(tenant.id, anna.id, APP_ID, ("Busy", "InACall"),
                              240 * US_PER_MINUTE)
    await clock.advance(MINUTE)  # the timer now sleeps until anna's session ends
    sim.presence.set_presence(tenant.id, ben.id, APP_ID, ("Busy", "InACall"),
                              5 * US_PER_MINUTE)
    changes.clear()
    await clock.advance(5 * MINUTE)
    assert [(c.resource_id, c.resource_data["activity"]) for c in changes] == [
        (ben.id, "Available")]


async def test_no_notification_when_nothing_visible_changes(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    sim.presence.set_client_state(tenant.id, anna.id, ("DoNotDisturb", "Presenting"))
    changes.clear()
    # A lower-ranked app session comes, fades and goes: the aggregate never moves.
    sim.presence.set_presence(tenant.id, anna.id, APP_ID, AVAILABLE, 15 * US_PER_MINUTE)
    sim.presence.set_presence(tenant.id, anna.id, OTHER_APP, ("Busy", "InACall"),
                              5 * US_PER_MINUTE)
    sim.presence.set_client_state(tenant.id, anna.id, ("DoNotDisturb", "Presenting"))
    sim.presence.sign_in(tenant.id, anna.id, "mobile")
    await clock.advance(20 * MINUTE)
    assert changes == []
    sim.presence.set_status_message(tenant.id, anna.id, "Presenting the roadmap", None, "t")
    assert len(changes) == 1 and changes[0].resource_data["statusMessage"] == {
        "message": {"content": "Presenting the roadmap", "contentType": "text"}}


async def test_status_message_expiry_is_a_visible_change(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    expires = sim.presence.now_us() + 90 * US_PER_MINUTE
    sim.presence.set_status_message(tenant.id, anna.id, "Back at 10", expires, "test")
    await clock.advance(90 * MINUTE)
    assert [c.resource_data["statusMessage"] for c in changes] == [
        {"message": {"content": "Back at 10", "contentType": "text"}}, None]


async def test_notifications_carry_a_growing_sequence_number_and_the_presence_resource(
    running: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    changes: list[ResourceChange],
) -> None:
    sim = running
    for state in (("Busy", "InACall"), ("Away", "Away"), ("Busy", "InAConferenceCall")):
        sim.presence.set_client_state(tenant.id, anna.id, state)
    stamps = [c.resource_data["sequenceNumber"] for c in changes]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    change = changes[0]
    assert change.tenant_id == tenant.id
    assert change.resource == f"communications/presences/{anna.id}"
    assert change.change_type == "updated" and change.resource_id == anna.id
    assert change.odata_type == "#microsoft.graph.presence"
    assert change.odata_id == f"users/{anna.id}/presence"
    assert change.resource_data["@odata.id"] == change.odata_id
    assert change.resource_data["id"] == anna.id


async def test_many_sessions_fading_at_once_each_publish_once(
    running: Simulator, clock: VirtualClock, tenant: Tenant, changes: list[ResourceChange],
) -> None:
    from m365sim.model import User as DirectoryUser
    from m365sim.scenario import teams_plan

    sim = running
    ids = []
    for index in range(2000):
        user = tenant.add_user(DirectoryUser(id=f"00000000-0000-4000-8000-{index:012d}",
                                             user_principal_name=f"p{index}@contoso.com",
                                             display_name=f"P {index}",
                                             assigned_plans=[teams_plan()]))
        sim.presence.load_user(tenant, user, "signed-out")
        sim.presence.set_presence(tenant.id, user.id, APP_ID, AVAILABLE, 8 * US_PER_MINUTE)
        ids.append(user.id)
    changes.clear()
    await clock.advance(5 * MINUTE)
    assert len(changes) == 2000
    assert {c.resource_data["activity"] for c in changes} == {"AvailableInactive"}
    await clock.advance(3 * MINUTE)
    assert len(changes) == 4000
    assert {(c.resource_data["availability"]) for c in changes[2000:]} == {"Offline"}
