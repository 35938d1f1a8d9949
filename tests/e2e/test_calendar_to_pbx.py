"""Calendar → PBX end to end: events in the simulator's mailboxes, the API connection as PBX,
on the virtual clock (issue 22)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prometheus_client import generate_latest
from sqlalchemy import text

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import LineStateEvent
from m365pbx.service.presence_view import person_presence
from m365pbx.store import create_engine
from m365pbx.store.tables import MailboxSubscriptionRow
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    pbx_users,
    running,
    settings_for,
    switchboard,
)

PEOPLE = (("anna", "Anna Schmidt"), ("ben", "Ben Weber"))
MINUTE = 60.0


def calendar_settings(server: RunningServer, tmp: Path, *, grant: bool = True,
                      **calendar: Any) -> Settings:
    """The e2e settings with `calendar:` switched on for the switchboard connection."""
    settings_for(server, tmp)
    path = tmp / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    if grant:
        data["tenants"][0]["credentials"][0]["permissions"].append("calendars.read")
    data["pbx_connections"][0]["calendar"] = {"enabled": True, **calendar}
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def add_event(sim: Simulator, tenant: Tenant, upn: str, **spec: Any) -> str:
    """Create an event in the person's mailbox (as Outlook would); its id."""
    user = tenant.find_user(upn)
    assert user is not None
    return sim.outlook.add_event(tenant, user, spec).id


def shown(pbx: ApiConnection, key: str) -> tuple[PbxPresence, str]:
    """What the PBX side shows for a person, with the note (online when nothing was set)."""
    state = pbx.shown(key)
    return (PbxPresence.ONLINE, "") if state is None else (state.presence, state.note)

async def shows(pbx: ApiConnection, key: str, wanted: PbxPresence, clock: VirtualClock, *,
                note: str | None = None) -> None:
    """Assert what the PBX shows at this virtual moment, once what is due has arrived.

    Waits in wall time only (the virtual clock stands still): on a loaded machine a write
    due a moment ago may still be on its way, and no later event can sneak in meanwhile.
    """
    def right() -> bool:
        presence, text = shown(pbx, key)
        return presence is wanted and (note is None or text == note)

    with contextlib.suppress(AssertionError):
        await eventually(right, clock, step=0.0, wall_timeout=30)
    assert right(), f"{key}: the PBX shows {shown(pbx, key)}, not {wanted} {note or ''}"



def calendar_with_webhooks(server: RunningServer, sim: Simulator, tmp: Path) -> Settings:
    """Settings with a public URL (the simulator delivers to loopback) and calendars read
    only every 12 hours: what shows sooner came by change notification."""
    sim.settings.extra["notification_allow_http_loopback"] = True
    sim.subscriptions.settings.allow_http_loopback = True
    settings_for(server, tmp, webhook_port=free_port())
    path = tmp / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"].append("calendars.read")
    data["pbx_connections"][0]["calendar"] = {"enabled": True, "poll_interval": "12h"}
    # Presence reconciliation is not under test: hourly keeps long runs of the clock quick.
    data["teams_to_pbx"]["reconcile_interval"] = "1h"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def now(clock: VirtualClock) -> float:
    """The virtual time in POSIX seconds."""
    return clock.now().timestamp()


async def started_with_calendars(service: Service, clock: VirtualClock, people: int) -> None:
    """Wait until the people are matched and each calendar was read once."""
    switchboard(service).replace_users(pbx_users(*PEOPLE))
    reader = service.tenants["contoso"].parts.calendar
    assert reader is not None
    await eventually(lambda: len(service.hub.people()) == 2, clock)
    # The state follows when the round of reads ends, a moment after the last read counts.
    await eventually(lambda: reader.status.people == people and reader.status.reads >= people
                     and reader.status.state == "following", clock, step=0.1)


async def until_shown(pbx: ApiConnection, key: str, wanted: PbxPresence,
                      clock: VirtualClock) -> float:
    """Advance in 0.1 s steps until the PBX shows `wanted`; the virtual time it did."""
    await eventually(lambda: shown(pbx, key)[0] is wanted, clock, step=0.1, wall_timeout=60)
    return now(clock)


async def advance_to(clock: VirtualClock, when: float, step: float = 15.0) -> None:
    """Advance the virtual clock to `when` in steps (the service's timers run on the way)."""
    while now(clock) < when:
        await clock.advance(min(step, when - now(clock)))
        await asyncio.sleep(0.01)  # let answers from the simulator arrive on the way


async def test_meetings_show_at_their_start_privately_and_go_at_their_end(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = calendar_settings(sim_server, tmp_path, show_working_elsewhere=True)
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Board review", start_in="10m",
              duration="30m", show_as="busy")
    add_event(sim, tenant, "ben@contoso.com", subject="Doctor", start_in="10m",
              duration="20m", show_as="busy", sensitivity="private")
    # Neither of these may ever show.
    add_event(sim, tenant, "anna@contoso.com", subject="Lunch", start_in="50m",
              duration="30m", show_as="free")
    cancelled = add_event(sim, tenant, "ben@contoso.com", subject="Offsite", start_in="45m",
                          duration="30m", show_as="busy", organizer="anna@contoso.com")
    # Working elsewhere: no Teams presence of its own, so its end is ours alone.
    add_event(sim, tenant, "ben@contoso.com", subject="Home office", start_in="90m",
              duration="30m", show_as="workingElsewhere")
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    sim.outlook.cancel_event(tenant, ben, cancelled)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        health = service.health()["tenants"]["contoso"]["calendar"]
        assert health["state"] == "following" and health["people"] == 2, health
        assert any(r["path"].endswith("/calendarView") for r in sim.faults.requests())
        await advance_to(clock, start - 2)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock, note="")  # not before
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0, at - start
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Board review")
        assert shown(pbx, "ben") == (PbxPresence.MEETING, "Private appointment")
        # The private subject is nowhere: not in the PBX, not in the presence API's view.
        views = [person_presence(person, service.hub) for person in service.hub.people()]
        assert views and "Doctor" not in repr(views)
        assert all("Doctor" not in state.note for state in pbx.shown_all().values())
        assert not [r for r in caplog.records if "Doctor" in r.getMessage()
                    or "Doctor" in str(r.__dict__)]
        metrics = generate_latest(service.registry).decode()
        assert 'm365pbx_calendar_people{tenant="contoso"} 2.0' in metrics
        assert 'm365pbx_calendar_events_ahead{tenant="contoso"} 3.0' in metrics
        fired = re.search(r'm365pbx_hub_timer_lateness_seconds_count (\S+)', metrics)
        within = re.search(r'm365pbx_hub_timer_lateness_seconds_bucket\{le="1.0"\} (\S+)',
                           metrics)
        assert fired and within and float(fired[1]) >= 2 and within[1] == fired[1], metrics
        # Ben's ends at +20 min; Teams (which the simulator also puts in the meeting) may
        # report its end a polling round later.
        await advance_to(clock, start + 20 * MINUTE)
        await eventually(lambda: shown(pbx, "ben")[0] is PbxPresence.ONLINE, clock)
        assert now(clock) - (start + 20 * MINUTE) < 60
        # The cancelled offsite (+45..+75 min) and the free lunch (+50..+80 min).
        await advance_to(clock, start + 45 * MINUTE)
        await shows(pbx, "ben", PbxPresence.ONLINE, clock)
        assert shown(pbx, "anna")[0] is PbxPresence.ONLINE
        # Working elsewhere at +90 min: away from its start to its end, each within 1 s.
        elsewhere = start + 80 * MINUTE
        await advance_to(clock, elsewhere - 2)
        at = await until_shown(pbx, "ben", PbxPresence.AWAY, clock)
        assert 0 <= at - elsewhere <= 1.0
        await advance_to(clock, elsewhere + 30 * MINUTE - 2)
        await shows(pbx, "ben", PbxPresence.AWAY, clock)
        at = await until_shown(pbx, "ben", PbxPresence.ONLINE, clock)
        assert 0 <= at - (elsewhere + 30 * MINUTE) <= 1.0


async def test_a_moved_meeting_is_followed_and_all_day_events_per_configuration(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, poll_interval="2m")
    first = now(clock) + 10 * MINUTE
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    moved = add_event(sim, tenant, "anna@contoso.com", subject="Review", start_in="10m",
                      duration="15m", show_as="busy")
    day = clock.now().date().isoformat()
    # An all-day busy conference does not show by default; an all-day OOF shows as away.
    add_event(sim, tenant, "anna@contoso.com", subject="Conference", start=day,
              is_all_day=True, duration="1d", show_as="busy")
    add_event(sim, tenant, "ben@contoso.com", subject="Holiday", start=day, is_all_day=True,
              duration="2d", show_as="oof")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        await until_shown(pbx, "ben", PbxPresence.AWAY, clock)
        assert shown(pbx, "ben")[1] == "Holiday"
        assert shown(pbx, "anna")[0] is PbxPresence.ONLINE
        # Moved 20 minutes later in Outlook: the next read (within 2 min) picks it up.
        later = first + 20 * MINUTE
        sim.outlook.update_event(tenant, anna, moved,
                                 {"start": datetime.fromtimestamp(later, UTC).isoformat()})
        await advance_to(clock, first + 5)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        await advance_to(clock, later - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - later <= 1.0


async def test_without_calendars_read_health_says_why_and_nothing_is_read(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, grant=False)
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        report = service.health()["tenants"]["contoso"]
        assert report["calendar"]["state"] == "off"
        assert "calendars.read" in report["calendar"]["last_error"]
        assert report["state"].startswith("degraded: calendar off"), report["state"]
        assert not any("calendarView" in r["path"] for r in sim.faults.requests())


async def test_a_meeting_that_began_while_m365pbx_was_down_shows_at_restart(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, show_working_elsewhere=True)
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Offsite", start_in="10m",
              duration="2h", show_as="workingElsewhere")
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
    await clock.advance(20 * MINUTE)  # down across the start
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        began = now(clock)
        await started_with_calendars(service, clock, 2)
        assert now(clock) - began < 30
        assert shown(pbx, "anna") == (PbxPresence.AWAY, "Offsite")
        # ... and the end is a timer again.
        await advance_to(clock, start + 2 * 3600 - 2)
        await shows(pbx, "anna", PbxPresence.AWAY, clock)
        at = await until_shown(pbx, "anna", PbxPresence.ONLINE, clock)
        assert 0 <= at - (start + 2 * 3600) <= 1.0


async def test_change_notifications_read_a_new_meeting_at_once(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        reads = service.tenants["contoso"].parts.calendar.status.reads  # type: ignore[union-attr]
        start = now(clock) + 10 * MINUTE
        add_event(sim, tenant, "anna@contoso.com", subject="Urgent", start_in="10m",
                  duration="15m", show_as="busy")
        await eventually(lambda: events.notifications >= 1, clock, step=0.2)
        calendar = service.tenants["contoso"].parts.calendar
        assert calendar is not None
        await eventually(lambda: calendar.status.reads > reads, clock, step=0.2)
        await advance_to(clock, start - 2)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna")[1] == "Urgent"
        report = service.health()["tenants"]["contoso"]["calendar"]
        assert report["subscriptions"]["active"] == 2, report


async def test_a_removed_subscription_is_made_again_and_the_calendar_read_back(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        theirs = next(s for s in sim.subscriptions.subscriptions.values()
                      if s.resource.strip("/").casefold() == f"users/{anna.id}/events".casefold())
        # Graph drops the subscription; the change made meanwhile notifies nobody.
        sim.subscriptions.remove_with_notice(theirs)
        start = now(clock) + 10 * MINUTE
        add_event(sim, tenant, "anna@contoso.com", subject="Unheard", start_in="10m",
                  duration="15m", show_as="busy")
        await eventually(lambda: events.health()["active"] == 2 and events.known(theirs.id)
                         is None, clock, step=0.2)
        await advance_to(clock, start - 2)
        # (Teams shows the meeting too, by its own notification; the subject is ours.)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Unheard")


async def test_a_calendar_graph_cannot_serve_is_shown_and_read_again(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    # Down for longer than the client's five attempts.
    sim.faults.add_fault(FaultRule(503, path_prefix=f"/v1.0/users/{anna.id}/calendarView",
                                   count=5))
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Retro", start_in="10m",
              duration="15m", show_as="busy")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        calendar = service.tenants["contoso"].parts.calendar
        assert calendar is not None
        await eventually(lambda: calendar.status.failed_reads == 1, clock, step=0.1)
        await eventually(lambda: calendar.status.reads >= 1, clock, step=0.1)
        report = service.health()["tenants"]["contoso"]
        assert report["calendar"]["state"] == "failing", report["calendar"]
        assert anna.id.lower() in report["calendar"]["last_error"]
        assert report["state"].startswith("degraded: calendar failing")
        # Read again a minute later: the error clears, the meeting shows on time.
        await eventually(lambda: calendar.status.reads >= 2, clock, step=1.0)
        assert service.health()["tenants"]["contoso"]["calendar"]["last_error"] is None
        await advance_to(clock, start - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0


async def test_a_person_no_longer_matched_loses_their_subscription(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    resource = f"users/{ben.id}/events".casefold()

    def bens() -> list[Any]:
        return [s for s in sim.subscriptions.subscriptions.values()
                if s.resource.strip("/").casefold() == resource]

    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        assert len(bens()) == 1
        # Ben leaves the PBX: no longer matched, no longer followed.
        switchboard(service).replace_users(pbx_users(PEOPLE[0]))
        await eventually(lambda: len(service.hub.people()) == 1, clock)
        await eventually(lambda: events.health()["active"] == 1 and not bens(), clock,
                         step=0.2)
        annas = events.known(next(iter(events._by_id)))
        assert annas is not None
    # At stop Anna's stays, kept for the next start to take over; Ben's is gone for good,
    # in Graph and in the store.
    assert [s.id for s in sim.subscriptions.subscriptions.values()
            if s.resource.strip("/").casefold().endswith("/events")] == [annas.id]
    assert await kept_subscriptions(tmp_path) == [annas.id]


async def test_a_meeting_moved_while_in_progress_is_followed(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, poll_interval="2m",
                                 show_working_elsewhere=True)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    start = now(clock) + 10 * MINUTE
    moved = add_event(sim, tenant, "anna@contoso.com", subject="Site visit", start_in="10m",
                      duration="30m", show_as="workingElsewhere")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        await advance_to(clock, start - 2)
        await until_shown(pbx, "anna", PbxPresence.AWAY, clock)
        await advance_to(clock, start + 5 * MINUTE)
        await shows(pbx, "anna", PbxPresence.AWAY, clock, note="Site visit")
        # Postponed by an hour while it runs: gone at the next read (within 2 minutes)...
        later = start + 60 * MINUTE
        sim.outlook.update_event(tenant, anna, moved,
                                 {"start": datetime.fromtimestamp(later, UTC).isoformat()})
        changed = now(clock)
        await eventually(lambda: shown(pbx, "anna")[0] is PbxPresence.ONLINE, clock)
        assert now(clock) - changed <= 2 * MINUTE + 5
        # ... and back on the second of its new start.
        await advance_to(clock, later - 2)
        at = await until_shown(pbx, "anna", PbxPresence.AWAY, clock)
        assert 0 <= at - later <= 1.0


async def test_notifications_lost_without_a_word_are_repaired_by_reading_again(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        # Graph forgets Anna's subscription and tells nobody: no notification, no lifecycle.
        theirs = next(s for s in sim.subscriptions.subscriptions.values()
                      if s.resource.strip("/").casefold() == f"users/{anna.id}/events".casefold())
        sim.subscriptions.subscriptions.pop(theirs.id)
        start = now(clock) + 20 * 3600
        add_event(sim, tenant, "anna@contoso.com", subject="Quarterly", start_in="20h",
                  duration="1h", show_as="busy")
        assert events.notifications == 0
        # The renewal (at 18 h) finds it gone: a new one, and the calendar read again.
        await advance_to(clock, start - 60, step=300.0)
        assert events.health()["active"] == 2
        await advance_to(clock, start - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna")[1] == "Quarterly"
        # Graph asks to reauthorize before each hourly token runs out; answered with a fresh
        # token, once per hour and subscription (with the cached one, once a minute).
        reauthorized = [r for r in sim.faults.requests()
                        if r["path"].endswith("/reauthorize")
                        and r["path"].split("/")[3] in events._by_id]
        assert len(reauthorized) <= 2 * 21, len(reauthorized)


def teams_shows(sim: Simulator, tenant: Tenant, upn: str) -> tuple[str, str]:
    """What Teams shows for a person right now (the simulator's aggregation)."""
    user = tenant.find_user(upn)
    assert user is not None
    presence = sim.presence.read(tenant, user.id, own=True)
    assert presence is not None
    return str(presence["availability"]), str(presence["activity"])


async def test_a_call_during_a_meeting_shows_in_teams_then_the_meeting_again(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path)
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Steering", start_in="10m",
              duration="1h", show_as="busy")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        await advance_to(clock, start - 2)
        await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        await advance_to(clock, start + 5 * MINUTE)
        assert teams_shows(sim, tenant, "anna@contoso.com") == ("Busy", "InAMeeting")
        pbx.submit([LineStateEvent("anna", LineState.ON_THE_PHONE, clock.now(), 1)])
        await eventually(lambda: teams_shows(sim, tenant, "anna@contoso.com")
                         == ("Busy", "InACall"), clock, step=0.2)
        # The PBX knows its own call; what m365pbx shows there stays the meeting.
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Steering")
        pbx.submit([LineStateEvent("anna", LineState.IDLE, clock.now(), 2)])
        await eventually(lambda: teams_shows(sim, tenant, "anna@contoso.com")
                         == ("Busy", "InAMeeting"), clock, step=0.5)
        await advance_to(clock, start + 10 * MINUTE)
        await shows(pbx, "anna", PbxPresence.MEETING, clock, note="Steering")


def event_subscriptions(sim: Simulator) -> dict[str, str]:
    """The simulator's subscriptions on people's events: resource (lower case) → id."""
    return {s.resource.strip("/").casefold(): s.id for s in sim.subscriptions.subscriptions.values()
            if s.resource.strip("/").casefold().endswith("/events")}


def subscription_creates(sim: Simulator) -> int:
    """How many subscriptions were asked for (of any kind) so far."""
    return sum(1 for r in sim.faults.requests()
               if r["method"] == "POST" and r["path"].rstrip("/") == "/v1.0/subscriptions")


def made_since(sim: Simulator, creates: int, since: datetime) -> list[str]:
    """The resources of the subscriptions made since `since`, when `creates` had been asked
    for: every request since made one of them (none failed, none was for what is kept)."""
    made = sorted(s.resource.strip("/") for s in sim.subscriptions.subscriptions.values()
                  if s.created_at >= since)
    assert subscription_creates(sim) - creates == len(made), made
    return made


async def kept_subscriptions(tmp: Path) -> list[str]:
    """The ids of the event and contact subscriptions in the store (not the users one)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / 'state.db'}")
    try:
        async with engine.connect() as connection:
            found = await connection.execute(text(
                "SELECT graph_subscription_id FROM mailbox_subscriptions WHERE kind != 'users'"))
            return sorted(str(row[0]) for row in found)
    finally:
        await engine.dispose()


async def forget_kept_subscriptions(tmp: Path) -> None:
    """Empty the store's mailbox subscriptions (a lost database, a crash before the save)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp / 'state.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM mailbox_subscriptions"))
    finally:
        await engine.dispose()


async def test_a_restart_takes_over_the_event_subscriptions_and_hears_what_changes(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2 and events.writes >= 1, clock,
                         step=0.2)
        before = event_subscriptions(sim)
        assert len(before) == 2
    await clock.advance(MINUTE)
    creates, restarted = subscription_creates(sim), clock.now()
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        # Known from the store at once; Graph's list confirms them: nothing made again.
        await eventually(lambda: events.restored == 2, clock, step=0.2)
        await started_with_calendars(service, clock, 2)
        assert events.health() | {"notifications": 0} == {
            "active": 2, "missing": 0, "notifications": 0, "restored": 2, "error": None}
        assert event_subscriptions(sim) == before
        # Nor the directory's on users: kept too, it is resumed.
        assert made_since(sim, creates, restarted) == []
        # A meeting made right after the restart is heard of by the subscription taken over.
        calendar = service.tenants["contoso"].parts.calendar
        assert calendar is not None
        reads = calendar.status.reads
        start = now(clock) + 10 * MINUTE
        add_event(sim, tenant, "anna@contoso.com", subject="After restart", start_in="10m",
                  duration="15m", show_as="busy")
        await eventually(lambda: events.notifications >= 1 and calendar.status.reads > reads,
                         clock, step=0.2)
        await advance_to(clock, start - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "After restart")
        assert made_since(sim, creates, restarted) == []


async def test_a_subscription_graph_dropped_while_down_is_made_again_at_start(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    annas, bens = f"users/{anna.id}/events".casefold(), f"users/{ben.id}/events".casefold()
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2 and events.writes >= 1, clock,
                         step=0.2)
    before = event_subscriptions(sim)
    # While m365pbx is down, Graph forgets Anna's subscription.
    sim.subscriptions.subscriptions.pop(before[annas])
    await clock.advance(MINUTE)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        after = event_subscriptions(sim)
        assert events.restored == 1
        assert after[bens] == before[bens] and after[annas] != before[annas]
        assert events.known(before[annas]) is None and events.known(after[annas]) is not None
        # The new one is kept too, and hears Anna's next meeting.
        await eventually(lambda: events.writes >= 1, clock, step=0.2)
        start = now(clock) + 10 * MINUTE
        add_event(sim, tenant, "anna@contoso.com", subject="Heard again", start_in="10m",
                  duration="15m", show_as="busy")
        await eventually(lambda: events.notifications >= 1, clock, step=0.2)
        await advance_to(clock, start - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Heard again")


async def test_kept_subscriptions_are_checked_by_renewing_when_graph_cannot_list_them(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2 and events.writes >= 1, clock,
                         step=0.2)
    before = event_subscriptions(sim)
    sim.faults.add_fault(FaultRule(503, path_prefix="/v1.0/subscriptions", method="GET"))
    await clock.advance(MINUTE)
    creates, restarted = subscription_creates(sim), clock.now()

    def renewed() -> set[str]:
        return {r["path"].split("/")[3] for r in sim.faults.requests()
                if r["method"] == "PATCH" and r["path"].startswith("/v1.0/subscriptions/")
                and datetime.fromisoformat(r["time"]) >= restarted}

    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        # Graph could not say which it still has: each kept one is renewed at once instead.
        await eventually(lambda: set(before.values()) <= renewed(), clock, step=0.2,
                         wall_timeout=60)
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        assert events.restored == 2 and event_subscriptions(sim) == before
        assert "events" not in " ".join(made_since(sim, creates, restarted))


async def test_a_store_that_cannot_keep_the_subscriptions_is_shown_and_nothing_stops(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    try:
        async with running(settings, clock) as service:
            await started_with_calendars(service, clock, 2)
            events = service.tenants["contoso"].parts.calendar_subscriptions
            assert events is not None
            await eventually(lambda: events.health()["active"] == 2 and events.writes >= 1,
                             clock, step=0.2)
            # The table is gone (a broken database): Ben's next subscription cannot be kept.
            async with engine.begin() as connection:
                await connection.execute(text("DROP TABLE mailbox_subscriptions"))
            ben = tenant.find_user("ben@contoso.com")
            assert ben is not None
            theirs = next(s for s in sim.subscriptions.subscriptions.values()
                          if s.resource.strip("/").casefold()
                          == f"users/{ben.id}/events".casefold())
            sim.subscriptions.remove_with_notice(theirs)

            def state() -> str:
                part = service.status.get("tenant/contoso/calendar_subscriptions")
                assert part is not None
                return part.state.value

            await eventually(lambda: events.health()["error"] is not None, clock, step=0.5,
                             wall_timeout=60)
            error = events.health()["error"]
            assert "cannot keep the subscriptions in the store" in error, error
            assert "mailbox_subscriptions" in error, error
            assert state() == "degraded"
            assert "cannot keep 1 subscriptions in the store" in caplog.text
            # Notifications still flow: a meeting for Ben shows on time.
            pbx = switchboard(service)
            start = now(clock) + 10 * MINUTE
            add_event(sim, tenant, "ben@contoso.com", subject="Unkept", start_in="10m",
                      duration="15m", show_as="busy")
            await advance_to(clock, start - 2)
            at = await until_shown(pbx, "ben", PbxPresence.MEETING, clock)
            assert 0 <= at - start <= 1.0
            # The table is back: the retry keeps it, and the error clears.
            async with engine.begin() as connection:
                await connection.run_sync(MailboxSubscriptionRow.__table__.create)
            await eventually(lambda: events.health()["error"] is None, clock, step=0.5,
                             wall_timeout=120)
            assert state() == "ok"
    finally:
        await engine.dispose()


async def test_subscriptions_a_crashed_run_left_are_removed_at_start(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)

    def ours() -> set[str]:
        return set(event_subscriptions(sim).values())

    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        left = ours()
    assert ours() == left and len(left) == 2
    # Not in the store (a crash before they were saved): nothing to take them over with.
    await forget_kept_subscriptions(tmp_path)
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        again = service.tenants["contoso"].parts.calendar_subscriptions
        assert again is not None
        await eventually(lambda: again.health()["active"] == 2, clock, step=0.2)
        assert len(ours()) == 2 and not ours() & left


async def test_one_cancelled_occurrence_of_a_series_never_shows(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    start = now(clock) + 10 * MINUTE
    series = add_event(sim, tenant, "ben@contoso.com", subject="Standup", start_in="10m",
                       duration="15m", show_as="busy",
                       recurrence={"type": "daily", "count": 2})
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        calendar = service.tenants["contoso"].parts.calendar
        events = service.tenants["contoso"].parts.calendar_subscriptions
        assert calendar is not None and events is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        reads = calendar.status.reads
        today = datetime.fromtimestamp(start, UTC).strftime("%Y%m%d")
        sim.outlook.cancel_event(tenant, ben, f"{series}_{today}")
        # The notification makes the calendar read again at once.
        await eventually(lambda: calendar.status.reads > reads, clock, step=0.2)
        await advance_to(clock, start + 5 * MINUTE, step=5.0)
        await shows(pbx, "ben", PbxPresence.ONLINE, clock)
        # Tomorrow's occurrence still shows, on the second.
        tomorrow = start + 24 * 3600
        await advance_to(clock, tomorrow - 60, step=300.0)
        await advance_to(clock, tomorrow - 2)
        at = await until_shown(pbx, "ben", PbxPresence.MEETING, clock)
        assert 0 <= at - tomorrow <= 1.0


async def test_the_calendar_rules_of_the_connections_mapping_decide_what_shows(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, show_working_elsewhere=True)
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    # Working elsewhere as do-not-disturb; and a Teams rule that must not touch the calendar.
    data["pbx_connections"][0]["mapping"] = {
        "calendar_to_pbx": [{"show_as": "workingElsewhere", "pbx": "dnd"}],
        "teams_to_pbx": [{"availability": "Away", "pbx": "busy"}]}
    path.write_text(yaml.safe_dump(data))
    settings = load_config(path, environ={})
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Customer site", start_in="10m",
              duration="30m", show_as="workingElsewhere")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        await advance_to(clock, start - 2)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        at = await until_shown(pbx, "anna", PbxPresence.DND, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.DND, "Customer site")
        await advance_to(clock, start + 30 * MINUTE - 2)
        at = await until_shown(pbx, "anna", PbxPresence.ONLINE, clock)
        assert 0 <= at - (start + 30 * MINUTE) <= 1.0


def grant_mailbox_settings(tenant: Tenant) -> None:
    """Admin consent for MailboxSettings.Read (the automatic replies) on the app."""
    for app in tenant.apps.values():
        app.application_roles.add("MailboxSettings.Read")


def utc(moment: float) -> dict[str, str]:
    """A dateTimeTimeZone in UTC."""
    return {"dateTime": datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "timeZone": "UTC"}


async def test_automatic_replies_show_away_for_their_window_or_while_switched_on(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    grant_mailbox_settings(tenant)
    settings = calendar_settings(sim_server, tmp_path, automatic_replies=True)
    anna, ben = tenant.find_user("anna@contoso.com"), tenant.find_user("ben@contoso.com")
    assert anna is not None and ben is not None
    start, end = now(clock) + 10 * MINUTE, now(clock) + 130 * MINUTE
    # Anna's holiday is scheduled (in Berlin time); Ben switched his replies on by hand.
    berlin = {"dateTime": datetime.fromtimestamp(start, UTC).astimezone(
        ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S"),
        "timeZone": "W. Europe Standard Time"}
    sim.outlook.set_automatic_replies(tenant, anna, {
        "status": "scheduled", "scheduledStartDateTime": berlin,
        "scheduledEndDateTime": utc(end), "internalReplyMessage": "<p>On holiday</p>"})
    sim.outlook.set_automatic_replies(tenant, ben, {"status": "alwaysEnabled"})
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        assert shown(pbx, "ben")[0] is PbxPresence.AWAY
        await advance_to(clock, start - 2)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        at = await until_shown(pbx, "anna", PbxPresence.AWAY, clock)
        assert 0 <= at - start <= 1.0
        # The reply message is mail, not a PBX note.
        assert "holiday" not in shown(pbx, "anna")[1]
        # Ben switches his replies off: gone at the next read (every 5 minutes).
        sim.outlook.set_automatic_replies(tenant, ben, {"status": "disabled"})
        changed = now(clock)
        await eventually(lambda: shown(pbx, "ben")[0] is PbxPresence.ONLINE, clock, step=5.0)
        assert now(clock) - changed <= 5 * MINUTE + 20
        await advance_to(clock, end - 2)
        await shows(pbx, "anna", PbxPresence.AWAY, clock)
        at = await until_shown(pbx, "anna", PbxPresence.ONLINE, clock)
        assert 0 <= at - end <= 1.0
        report = service.health()["tenants"]["contoso"]["calendar"]
        assert report["state"] == "following" and report["failed_reads"] == 0, report


async def test_automatic_replies_without_mailbox_settings_read_say_so_and_events_still_show(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, automatic_replies=True)
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Planning", start_in="10m",
              duration="15m", show_as="busy")
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        calendar = service.tenants["contoso"].parts.calendar
        assert calendar is not None
        await eventually(lambda: calendar.status.state == "failing", clock, step=0.1)
        report = service.health()["tenants"]["contoso"]
        assert "MailboxSettings.Read" in report["calendar"]["last_error"], report["calendar"]
        assert report["state"].startswith("degraded: calendar failing")
        await advance_to(clock, start - 2)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Planning")


async def test_a_restart_just_before_a_start_misses_nothing(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    # Nothing of the calendar is kept in the store: the fresh read at start-up rebuilds every
    # timer, before the meeting's start (the next regular read would be 12 hours away).
    settings = calendar_settings(sim_server, tmp_path, poll_interval="12h")
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Go-live", start_in="10m",
              duration="20m", show_as="busy")
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        await advance_to(clock, start - 60)
    await clock.advance(30)  # down for 30 s, up again 30 s before the start
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        assert now(clock) < start - 2, "the first read came too late to tell"
        await advance_to(clock, start - 2, step=1.0)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Go-live")


async def test_kept_blocks_show_a_meeting_on_time_after_a_restart_graph_cannot_serve(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, show_working_elsewhere=True)
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Customer visit", start_in="10m",
              duration="30m", show_as="workingElsewhere")
    async with running(settings, clock) as service:
        await started_with_calendars(service, clock, 2)
        keeper = service.tenants["contoso"].parts.calendar_keeper
        assert keeper is not None
        await eventually(lambda: keeper.writes >= 1, clock, step=0.1)
    # Outlook cannot serve Anna's calendar when m365pbx comes back.
    sim.faults.add_fault(FaultRule(503, path_prefix=f"/v1.0/users/{anna.id}/calendarView",
                                   count=100_000))
    await clock.advance(MINUTE)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        calendar = service.tenants["contoso"].parts.calendar
        assert calendar is not None
        await eventually(lambda: calendar.status.restored >= 1
                         and calendar.status.failed_reads >= 1, clock, step=0.1)
        assert service.health()["tenants"]["contoso"]["calendar"]["state"] == "failing"
        await advance_to(clock, start - 2)
        await shows(pbx, "anna", PbxPresence.ONLINE, clock)
        at = await until_shown(pbx, "anna", PbxPresence.AWAY, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.AWAY, "Customer visit")
        await advance_to(clock, start + 30 * MINUTE - 2)
        at = await until_shown(pbx, "anna", PbxPresence.ONLINE, clock)
        assert 0 <= at - (start + 30 * MINUTE) <= 1.0


async def test_notifications_lost_in_delivery_are_repaired_by_the_daily_read(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        events = service.tenants["contoso"].parts.calendar_subscriptions
        calendar = service.tenants["contoso"].parts.calendar
        assert events is not None and calendar is not None
        await eventually(lambda: events.health()["active"] == 2, clock, step=0.2)
        # A calendar read while its subscription flows is read again a day later (one read
        # before that came due in 12 h). "Sync now" reads both now, with the subscriptions on.
        before = calendar.status.reads
        service.tenants["contoso"].sync_now()
        await eventually(lambda: calendar.status.reads >= before + 2, clock, step=0.0,
                         wall_timeout=30)
        reads = calendar.status.reads
        # Every notification from now on is lost on the way; the subscriptions stay.
        sim.subscriptions.settings.loss = 1.0
        lost_from = now(clock)
        start = lost_from + 26 * 3600
        add_event(sim, tenant, "anna@contoso.com", subject="Offsite planning",
                  start_in="26h", duration="1h", show_as="busy")
        await advance_to(clock, lost_from + 20 * 3600, step=300.0)
        assert events.notifications == 0 and calendar.status.reads == reads
        # The daily read brings the meeting; it shows on the second.
        await advance_to(clock, start - 2, step=300.0)
        assert calendar.status.reads >= reads + 2
        assert events.health()["active"] == 2
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - start <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Offsite planning")
