"""Meetings and out-of-office events drive the Teams activity on the virtual clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer

MINUTE = 60


async def settle() -> None:
    """Let the outlook loop notice a change and plan its next wake-up."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def reported(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Any]]:
    """What the outlook part tells the presence part, in order."""
    calls: list[tuple[str, str, Any]] = []
    monkeypatch.setattr(sim.presence, "set_calendar_activity",
                        lambda tenant_id, user_id, activity: calls.append(
                            (tenant_id, user_id, activity)), raising=False)
    return calls


@pytest.fixture
async def running(sim: Simulator) -> AsyncIterator[None]:
    """The outlook part's time-driven loop, as Simulator.run() starts it."""
    task = asyncio.create_task(sim.outlook.run())
    await settle()
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def activities(calls: list[tuple[str, str, Any]]) -> list[Any]:
    return [activity for _, _, activity in calls]


@pytest.mark.usefixtures("running")
async def test_meeting_start_and_end_on_the_virtual_clock(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    reported: list[tuple[str, str, Any]],
) -> None:
    sim.outlook.add_event(tenant, anna, {"subject": "Review", "start_in": "30m",
                                         "duration": "1h", "show_as": "busy"})
    await settle()
    await clock.advance(29 * MINUTE)
    assert reported == []
    await clock.advance(1 * MINUTE)
    assert reported == [(tenant.id, anna.id, "InAMeeting")]
    assert sim.outlook.calendar_activity(tenant.id, anna.id) == "InAMeeting"
    await clock.advance(60 * MINUTE)
    assert activities(reported) == ["InAMeeting", None]


@pytest.mark.usefixtures("running")
async def test_out_of_office_wins_over_an_overlapping_meeting(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    reported: list[tuple[str, str, Any]],
) -> None:
    sim.outlook.add_event(tenant, anna, {"start_in": "30m", "duration": "90m",
                                         "show_as": "tentative"})
    sim.outlook.add_event(tenant, anna, {"start_in": "60m", "duration": "30m", "show_as": "oof"})
    await settle()
    await clock.advance(3 * 60 * MINUTE)
    assert activities(reported) == ["InAMeeting", "OutOfOffice", "InAMeeting", None]


@pytest.mark.usefixtures("running")
async def test_daily_series_starts_a_meeting_every_day(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    reported: list[tuple[str, str, Any]],
) -> None:
    sim.outlook.add_event(tenant, anna, {"start": "2026-01-05T09:00:00Z", "duration": "15m",
                                         "recurrence": {"type": "daily", "count": 2}})
    await settle()
    await clock.advance(3 * 24 * 60 * MINUTE)
    assert activities(reported) == ["InAMeeting", None, "InAMeeting", None]


async def test_cancelling_a_running_meeting_ends_its_effect_at_once(
    sim: Simulator, tenant: Tenant, anna: User, reported: list[tuple[str, str, Any]],
) -> None:
    # Started 10 minutes ago: the effect shows as soon as the meeting is added.
    meeting = sim.outlook.add_event(tenant, anna, {"start": "2026-01-05T07:50:00Z",
                                                   "duration": "1h",
                                                   "organizer": "ben@contoso.com"})
    assert activities(reported) == ["InAMeeting"]
    sim.outlook.cancel_event(tenant, anna, meeting.id)
    assert activities(reported) == ["InAMeeting", None]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"start_in": "0s", "duration": "1h", "show_as": "free"}, []),
    ({"start_in": "0s", "duration": "1h", "show_as": "workingElsewhere"}, []),
    ({"start": "2026-01-05", "is_all_day": True, "show_as": "busy"}, []),
    ({"start": "2026-01-05", "is_all_day": True, "show_as": "oof"}, ["OutOfOffice"]),
    ({"start_in": "0s", "duration": "1h", "is_cancelled": True}, []),
])
async def test_which_events_count(
    sim: Simulator, tenant: Tenant, anna: User, reported: list[tuple[str, str, Any]],
    spec: dict[str, Any], expected: list[str],
) -> None:
    sim.outlook.add_event(tenant, anna, spec)
    assert activities(reported) == expected


@pytest.mark.usefixtures("running")
async def test_graph_presence_shows_the_meeting(
    sim: Simulator, clock: VirtualClock, anna: User, client: httpx.AsyncClient,
) -> None:
    # Through the control API and the real presence part: Anna is signed in to Teams
    # (the scenario's default) and her calendar says she is in a meeting.
    created = await client.post(f"/_sim/tenants/contoso.com/users/{anna.id}/events",
                                json={"subject": "Board", "start_in": "5m", "duration": "1h",
                                      "showAs": "busy", "isOnlineMeeting": True})
    assert created.status_code == 201
    await settle()
    await clock.advance(5 * MINUTE)
    headers = bearer(app_token(sim, ["Presence.Read.All"]))
    response = await client.get(f"/v1.0/users/{anna.id}/presence", headers=headers)
    assert response.status_code == 200, response.text
    assert (response.json()["availability"], response.json()["activity"]) == (
        "Busy", "InAMeeting")
    calendar = (await client.get(f"/_sim/tenants/contoso.com/users/{anna.id}/calendar")).json()
    assert calendar["calendarActivity"] == "InAMeeting"
    await clock.advance(60 * MINUTE)
    fresh = bearer(app_token(sim, ["Presence.Read.All"]))  # the first one has expired
    after = (await client.get(f"/v1.0/users/{anna.id}/presence", headers=fresh)).json()
    assert after["activity"] != "InAMeeting"


@pytest.mark.usefixtures("running")
async def test_meeting_beyond_the_look_ahead_is_still_caught(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, anna: User,
    reported: list[tuple[str, str, Any]],
) -> None:
    sim.outlook.add_event(tenant, anna, {"start_in": "10d", "duration": "1h"})
    await settle()
    await clock.advance(10 * 24 * 60 * MINUTE - 1)
    assert reported == []
    await clock.advance(30 * MINUTE)
    assert activities(reported) == ["InAMeeting"]


@pytest.mark.usefixtures("running")
async def test_many_mailboxes_each_change_at_their_own_boundary(
    sim: Simulator, clock: VirtualClock, tenant: Tenant, anna: User, ben: User,
    reported: list[tuple[str, str, Any]],
) -> None:
    sim.outlook.add_event(tenant, anna, {"start_in": "10m", "duration": "20m"})
    sim.outlook.add_event(tenant, ben, {"start_in": "20m", "duration": "20m", "show_as": "oof"})
    await settle()
    await clock.advance(60 * MINUTE)
    assert [(user, activity) for _, user, activity in reported] == [
        (anna.id, "InAMeeting"), (ben.id, "OutOfOffice"), (anna.id, None), (ben.id, None)]
