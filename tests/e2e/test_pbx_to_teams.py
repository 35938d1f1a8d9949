"""PBX → Teams end to end: calls from the built-in API become "In a call" in the simulator,
whose aggregation computes what Teams would show, and nothing of ours lingers after them."""

from __future__ import annotations

import ssl
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import LineStateEvent, PbxPresenceEvent
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, requests_to
from tests.sim.conftest import APP_ID

IN_A_CALL = ("Busy", "InACall")
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}
# Long tests poll Teams rarely: the calls under test go the other way.
QUIET = {"teams_to_pbx": {"min_poll_interval": "5m", "reconcile_interval": "5m"}}


async def presence_of(server: RunningServer, upn: str) -> dict[str, Any]:
    """The simulator's full picture of a person (control API): sessions, preferred, aggregate."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.get(f"{server.url}/_sim/tenants/contoso.com/users/{upn}/presence")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def shows(sim: Simulator, upn: str) -> tuple[str, str]:
    """What Teams shows for a person right now (the simulator's aggregation)."""
    tenant = next(iter(sim.directory.tenants.values()))
    user = tenant.find_user(upn)
    assert user is not None
    presence = sim.presence.read(tenant, user.id, own=True)
    assert presence is not None
    return str(presence["availability"]), str(presence["activity"])


def ours(picture: dict[str, Any]) -> list[dict[str, Any]]:
    """Our app's sessions in a presence picture."""
    return [s for s in picture["app_sessions"] if s["session_id"].lower() == APP_ID.lower()]


def line(pbx: ApiConnection, key: str, state: LineState, at: datetime, sequence: int) -> None:
    """The PBX reports a line state through the built-in API."""
    pbx.submit([LineStateEvent(key, state, at, sequence)])


async def wait_for_people(service: Any, clock: VirtualClock, count: int = 2) -> None:
    """Until the directory has matched the PBX's users."""
    await eventually(lambda: len(service.hub.people()) == count, clock)


async def test_a_call_shows_in_teams_at_once_and_nothing_of_ours_stays_after_it(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    async with running(settings_for(sim_server, tmp_path), clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)
        assert shows(sim, "anna@contoso.com") == ("Available", "Available")

        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                         step=0.1, wall_timeout=10)
        picture = await presence_of(sim_server, "anna@contoso.com")
        assert [s["shown"] for s in ours(picture)] == [
            {"availability": "Busy", "activity": "InACall"}]
        assert shows(sim, "ben@contoso.com") == ("Available", "Available")

        # A transfer: idle for half a second, then on the phone again. Teams does not flap.
        line(pbx, "anna", LineState.IDLE, clock.now(), 2)
        await clock.advance(0.5)
        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 3)
        for _ in range(10):
            await clock.advance(0.5)
            await service.hub.settled()  # writes land before time moves on
            assert shows(sim, "anna@contoso.com") == IN_A_CALL

        line(pbx, "anna", LineState.IDLE, clock.now(), 4)
        await eventually(lambda: shows(sim, "anna@contoso.com") == ("Available", "Available"),
                         clock, step=0.25)
        picture = await presence_of(sim_server, "anna@contoso.com")
        assert ours(picture) == []
        assert picture["preferred"] is None
        # One call, two requests: the session set at the start and cleared at the end.
        assert requests_to(sim, "POST", f"/v1.0/users/{user_id(sim, 'anna')}/presence/"
                                        "setPresence") == 1
        assert requests_to(sim, "POST", f"/v1.0/users/{user_id(sim, 'anna')}/presence/"
                                        "clearPresence") == 1


def accepted(sim: Simulator, path: str) -> int:
    """How many POSTs to `path` the simulator accepted."""
    return sum(1 for r in sim.faults.requests()
               if r["method"] == "POST" and r["path"] == path and r["status"] < 300)


def user_id(sim: Simulator, name: str) -> str:
    """The Graph id of a Contoso user."""
    tenant = next(iter(sim.directory.tenants.values()))
    user = tenant.find_user(f"{name}@contoso.com")
    assert user is not None
    return user.id


async def test_a_three_hour_call_keeps_showing_in_a_call(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    async with running(settings_for(sim_server, tmp_path, **QUIET), clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)
        line(pbx, "ben", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: shows(sim, "ben@contoso.com") == IN_A_CALL, clock, step=0.1)
        for _minute in range(180):
            await clock.advance(60)
            await service.hub.settled()  # writes land before time moves on
            assert shows(sim, "ben@contoso.com") == IN_A_CALL
        set_path = f"/v1.0/users/{user_id(sim, 'ben')}/presence/setPresence"
        # 15-minute sessions refreshed a minute before they lapse: 1 + 180 // 14 writes
        # (a request refused once because the hourly token expired is not a write).
        assert 12 <= accepted(sim, set_path) <= 14
        picture = await presence_of(sim_server, "ben@contoso.com")
        assert len(ours(picture)) == 1

        line(pbx, "ben", LineState.IDLE, clock.now(), 2)
        await eventually(lambda: shows(sim, "ben@contoso.com") == ("Available", "Available"),
                         clock, step=0.5)
        assert ours(await presence_of(sim_server, "ben@contoso.com")) == []


async def test_a_person_on_manual_do_not_disturb_is_left_alone(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    async with running(settings_for(sim_server, tmp_path), clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)
        await in_teams(sim_server, "anna@contoso.com", DND)
        anna = service.hub.person_by_pbx_key("switchboard", "anna")
        assert anna is not None
        # The poll has read her choice (and shows it in the PBX).
        await eventually(lambda: pbx.shown("anna") is not None
                         and pbx.shown("anna").presence is PbxPresence.DND,  # type: ignore[union-attr]
                         clock)

        # She sets "away" on her phone, and takes a call: Teams keeps her DND.
        pbx.submit([PbxPresenceEvent("anna", PbxPresence.AWAY, clock.now(), "", 1)])
        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 2)
        await eventually(lambda: len(sim_sessions(sim, "anna")) == 1, clock, step=0.2)
        for _ in range(20):
            await clock.advance(1)
            await service.hub.settled()  # writes land before time moves on
        picture = await presence_of(sim_server, "anna@contoso.com")
        assert picture["aggregate"]["availability"] == "DoNotDisturb"
        assert picture["aggregate"]["activity"] == "DoNotDisturb"
        assert picture["preferred"]["set_by"] == "teams"
        # The call is recorded underneath, invisible while her choice stands.
        assert [s["shown"]["activity"] for s in ours(picture)] == ["InACall"]
        preferred = f"/v1.0/users/{user_id(sim, 'anna')}/presence/setUserPreferredPresence"
        assert requests_to(sim, "POST", preferred) == 0

        line(pbx, "anna", LineState.IDLE, clock.now(), 3)
        await eventually(lambda: sim_sessions(sim, "anna") == [], clock, step=0.5)
        assert shows(sim, "anna@contoso.com") == ("DoNotDisturb", "DoNotDisturb")


def sim_sessions(sim: Simulator, name: str) -> list[str]:
    """Session ids of app sessions the simulator holds for a person, live now."""
    tenant = next(iter(sim.directory.tenants.values()))
    state = sim.presence.state_of(tenant.id, user_id(sim, name))
    return [str(session_id) for session_id in state.apps]
