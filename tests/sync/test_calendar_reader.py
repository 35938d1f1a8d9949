"""The calendar reader's rounds against the simulator in-process (sync/calendar/reader.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from m365pbx.core.calendar import CalendarRules
from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import PolicyConfig, StatusAction, TeamsAction
from m365pbx.core.presence import PbxPresence
from m365pbx.graph.client import GraphClient
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.calendar import CalendarPlan, CalendarReader
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
PLAN = CalendarPlan(CalendarRules(), window=36 * 3600.0, interval=300.0)


class Shown:
    """The PBX side: what was shown for whom."""

    def __init__(self) -> None:
        self.by_key: dict[str, tuple[PbxPresence, str]] = {}

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Remember it."""
        self.by_key[person.key] = (presence, note)


class NoTeams:
    """Teams writes are not under test."""

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        """Do nothing."""


class SimTokens:
    """Application tokens the simulator signs, without a sign-in round trip."""

    def __init__(self, sim: Simulator, tenant: Tenant) -> None:
        self.sim = sim
        self.tenant = tenant

    async def token(self) -> str:
        """A token with Calendars.Read."""
        return self.sim.issuer.access_token(
            tenant_id=self.tenant.id, app_id=APP_ID, now=self.sim.clock.now(),
            lifetime=timedelta(hours=1), roles=["Calendars.Read"])

    async def invalidate(self) -> None:
        """Nothing cached."""


@pytest.fixture
async def graph(sim: Simulator, tenant: Tenant,
                clock: VirtualClock) -> AsyncIterator[GraphClient]:
    """m365pbx's Graph client on the simulator's ASGI app."""
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.test") as http:
        yield GraphClient(SimTokens(sim, tenant), http, base_url="https://sim.test",
                          clock=clock)


async def test_people_are_looked_up_once_per_change_not_per_round(
    sim: Simulator, tenant: Tenant, clock: VirtualClock, graph: GraphClient,
) -> None:
    users = [u for u in tenant.users.values() if u.user_principal_name.startswith(("anna",
                                                                                    "ben"))]
    people = [Person(i, "pbx", PbxUser(u.user_principal_name.split("@")[0], {}), u.id,
                     tenant="contoso") for i, u in enumerate(users)]
    pbx = Shown()
    hub = PresenceHub(clock, pbx, NoTeams(), lambda _p: CONFIG)
    hub.set_people(people)
    asked: list[int] = []

    def plan_for(person: Person) -> CalendarPlan:
        asked.append(person.id)
        return PLAN

    reader = CalendarReader("contoso", graph, hub, clock, plan_for)
    sim.outlook.add_event(tenant, users[0], {"subject": "Sync", "start_in": "1h",
                                             "duration": "30m"})
    tasks = [asyncio.create_task(hub.run()), asyncio.create_task(reader.run())]
    try:
        for _ in range(40):  # 20 minutes: four rounds of reads
            await clock.advance(30)
            await asyncio.sleep(0.01)
        assert reader.status.reads >= 2 * 4
        assert len(asked) == len(people)  # once, not once per round
        hub.set_people(people[:1])  # someone left: looked up again, once
        for _ in range(4):
            await clock.advance(30)
            await asyncio.sleep(0.01)
        assert len(asked) == len(people) + 1
        assert reader.status.people == 1
        await clock.advance(3600)
        await hub.settled()
        assert pbx.by_key[people[0].key] == (PbxPresence.MEETING, "Sync")
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
