"""PBX → Teams end to end, the optional parts: the PBX note as the Teams status message
(never over the person's own message) and switches that differ for some people."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxPresenceEvent
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, in_teams, pbx_users, running, settings_for, switchboard
from tests.e2e.test_pbx_to_teams import (
    IN_A_CALL,
    QUIET,
    line,
    presence_of,
    shows,
    sim_sessions,
    user_id,
    wait_for_people,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, requests_to


def connection(**switches: Any) -> list[dict[str, Any]]:
    """The harness's one API connection, with these switches."""
    return [{"name": "switchboard", "kind": "api", "tenant": "contoso", **switches}]


def message_of(sim: Simulator, name: str) -> str | None:
    """The status message Teams shows for a person (None: none)."""
    tenant = next(iter(sim.directory.tenants.values()))
    status = sim.presence.state_of(tenant.id, user_id(sim, name)).status
    return None if status is None else status.content


def presence(pbx: ApiConnection, key: str, value: PbxPresence, note: str, at: datetime,
             sequence: int) -> None:
    """The person sets a presence (and a note) on their phone."""
    pbx.submit([PbxPresenceEvent(key, value, at, note, sequence)])


async def test_the_pbx_note_becomes_the_teams_status_message_and_goes_with_it(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, **QUIET,
                            pbx_connections=connection(push_pbx_note_to_teams=True))
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)

        presence(pbx, "anna", PbxPresence.AWAY, "At lunch until 2", clock.now(), 1)
        await eventually(lambda: message_of(sim, "anna") == "At lunch until 2", clock, step=0.2)
        assert shows(sim, "anna@contoso.com") == ("Away", "Away")
        picture = await presence_of(sim_server, "anna@contoso.com")
        # mapping.md: the note lasts as long as its presence (away: 7 days).
        expires = datetime.fromisoformat(picture["status_message"]["expires"])
        assert abs(expires - (clock.now() + timedelta(days=7))) < timedelta(minutes=1)
        assert picture["status_message"]["set_by"] != "teams"

        presence(pbx, "anna", PbxPresence.ONLINE, "", clock.now(), 2)
        await eventually(lambda: message_of(sim, "anna") is None, clock, step=0.2)
        await eventually(lambda: shows(sim, "anna@contoso.com") == ("Available", "Available"),
                         clock, step=0.2)


async def test_a_message_the_person_typed_in_teams_is_never_replaced(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, **QUIET,
                            pbx_connections=connection(push_pbx_note_to_teams=True))
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)
        await in_teams(sim_server, "ben@contoso.com", {"status_message": "Parental leave"})

        presence(pbx, "ben", PbxPresence.BUSY, "Call my mobile", clock.now(), 1)
        await eventually(lambda: shows(sim, "ben@contoso.com") == ("Busy", "Busy"), clock,
                         step=0.2)
        for _ in range(10):
            await clock.advance(1)
            await service.hub.settled()
        presence(pbx, "ben", PbxPresence.ONLINE, "", clock.now(), 2)
        await eventually(lambda: shows(sim, "ben@contoso.com") == ("Available", "Available"),
                         clock, step=0.2)
        assert message_of(sim, "ben") == "Parental leave"
        path = f"/v1.0/users/{user_id(sim, 'ben')}/presence/setStatusMessage"
        assert requests_to(sim, "POST", path) == 0


async def test_line_state_can_be_switched_off_for_some_people(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    # Ben is named by his Teams sign-in name, as an admin reading the Teams side would.
    switches = connection(per_person=[{"people": ["Ben@Contoso.com"],
                                       "push_line_state_to_teams": False}])
    async with running(settings_for(sim_server, tmp_path, **QUIET,
                                    pbx_connections=switches), clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)

        line(pbx, "ben", LineState.ON_THE_PHONE, clock.now(), 1)
        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock, step=0.2)
        for _ in range(5):
            await clock.advance(1)
            await service.hub.settled()
        assert sim_sessions(sim, "ben") == []
        assert shows(sim, "ben@contoso.com") == ("Available", "Available")
