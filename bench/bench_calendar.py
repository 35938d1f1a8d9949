"""Calendar → PBX: memory of a day of timers, lateness of meeting starts, load time, requests.

1. `calendar_timers`: the presence hub on the wall clock with `--people` people (50,000),
   each with `--events` (10) calendar blocks over the coming day; `--burst` of them (10,000,
   a 09:00 spike) have a meeting starting at the same second a few seconds ahead. Measured:
   the memory the day's blocks add to the hub (tracemalloc), and the lateness of each
   burst start = the PBX write for that person minus the meeting's start (the sink records
   the time; nothing else runs).
2. `calendar_load`: `--mailboxes` (2,000) mailboxes of the simulator with 10 events each
   over the next 36 hours, read through m365pbx's calendarView call over the simulator's
   ASGI app (8 at once); time per calendar, extrapolated to 50,000,
   and Graph requests per person for the first read.
3. `calendar_store`: the blocks kept across restarts (`calendar_blocks`, SQLite in a temporary
   directory): `--people` people with `--events` blocks each saved as the keeper saves them
   (500 people a transaction), then all loaded back as at start-up; the restore is compared
   with the first round of reads (`calendar_load`'s time per calendar, same run).
4. `subscriptions_store`: the event subscriptions kept across restarts
   (`mailbox_subscriptions`, SQLite in a temporary directory): `--people` records saved as
   MailboxSubscriptions saves them (StoreMailboxRecords, 500 people a transaction), saved
   again (a day of renewals), and loaded back as at start-up, against making them anew
   (one create per person, 32 at once, each waiting about a second for Graph's validation).
5. Requests per person per day follow from the configuration: 86,400 / poll_interval when
   polling (288 at 5 minutes); with change notifications 1 daily read + 1 per change + 1
   subscription renewal (lifetime one day).

Prints one JSON line per part:
{"bench": "calendar_timers", "people", "blocks", "blocks_mb", "burst", "late_p50_ms",
 "late_p99_ms", "late_max_ms"}
{"bench": "calendar_load", "mailboxes", "seconds", "per_calendar_ms", "for_50000_s",
 "requests_per_person"}
{"bench": "calendar_store", "people", "blocks", "save_s", "load_s", "db_mb",
 "load_vs_first_reads"}
{"bench": "subscriptions_store", "people", "save_s", "renewals_s", "load_s",
 "creates_instead_s"}
Run: .venv/bin/python bench/bench_calendar.py [--people 50000] [--events 10] [--burst 10000]
     [--mailboxes 2000] [--part subscriptions_store]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
import uuid
from datetime import timedelta
from typing import Any

import httpx

from m365pbx.clock import SystemClock
from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import CalendarBlock, PolicyConfig, StatusAction, TeamsAction
from m365pbx.core.presence import PbxPresence
from m365pbx.graph.calendar import calendar_view
from m365pbx.graph.client import GraphClient
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import AppRegistration, Tenant, User
from m365sim.simulator import SimSettings, Simulator

CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
APP_ID = str(uuid.UUID(int=1))


class RecordingPbx:
    """A PBX sink that notes when each person's meeting was shown."""

    def __init__(self) -> None:
        self.shown_at: dict[int, float] = {}

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Record the wall time of the first meeting shown for the person."""
        if presence is PbxPresence.MEETING:
            self.shown_at.setdefault(person.id, time.time())


class NoTeams:
    """Writes nothing to Teams (the calendar path writes only to the PBX)."""

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        """Do nothing."""


async def timers(people: int, events: int, burst: int) -> dict[str, Any]:
    """A day of blocks for everyone, and the lateness of a burst of starts."""
    pbx = RecordingPbx()
    hub = PresenceHub(SystemClock(), pbx, NoTeams(), lambda _p: CONFIG, workers=64)
    everyone = [Person(i, "pbx", PbxUser(f"u{i}", {}), f"id-{i}") for i in range(people)]
    hub.set_people(everyone)
    runner = asyncio.create_task(hub.run())
    now = time.time()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    blocks = 0
    days: list[tuple[CalendarBlock, ...]] = []
    for person in everyone:
        first = now + 3600 + (person.id % 3600)
        day = tuple(CalendarBlock(PbxPresence.MEETING, first + i * 3600.0,
                                  first + i * 3600.0 + 1800.0, f"Meeting {i}")
                    for i in range(events))
        blocks += len(day)
        days.append(day)
        hub.calendar(person.id, day)
    await hub.settled()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    # The 09:00 spike: the first `burst` people's next meeting moves to one second ahead.
    burst_start = float(int(time.time()) + 5)
    for person in everyone[:burst]:
        spike = CalendarBlock(PbxPresence.MEETING, burst_start, burst_start + 1800.0, "Spike")
        hub.calendar(person.id, (spike, *days[person.id][1:]))
    await hub.settled()
    await asyncio.sleep(max(0.0, burst_start - time.time()) + 3.0)
    await hub.settled()
    runner.cancel()
    late = sorted((pbx.shown_at[i] - burst_start) * 1000 for i in range(burst)
                  if i in pbx.shown_at)
    missing = burst - len(late)
    return {"bench": "calendar_timers", "people": people, "blocks": blocks,
            "blocks_mb": round((after - before) / 1e6, 1), "burst": burst,
            "missing": missing,
            "late_p50_ms": round(statistics.median(late), 1),
            "late_p99_ms": round(late[int(len(late) * 0.99) - 1], 1),
            "late_max_ms": round(late[-1], 1)}


class SimTokens:
    """Application tokens signed by the simulator (no sign-in round trip)."""

    def __init__(self, sim: Simulator, tenant: Tenant) -> None:
        self.sim = sim
        self.tenant = tenant

    async def token(self) -> str:
        """A fresh application token with Calendars.Read."""
        return self.sim.issuer.access_token(
            tenant_id=self.tenant.id, app_id=APP_ID, now=self.sim.clock.now(),
            lifetime=timedelta(hours=1), roles=["Calendars.Read"])

    async def invalidate(self) -> None:
        """Nothing cached."""


async def load(mailboxes: int) -> dict[str, Any]:
    """Read every mailbox's coming 36 hours as the reader does."""
    clock = VirtualClock()
    sim = Simulator(clock, SimSettings(base_url="https://sim.bench"))
    tenant = Tenant(id=str(uuid.UUID(int=2)), display_name="Bench", domains=["bench.test"])
    tenant.apps[APP_ID] = AppRegistration(app_id=APP_ID, display_name="bench",
                                          application_roles={"Calendars.Read"})
    sim.directory.add_tenant(tenant)
    users = [tenant.add_user(User(id=str(uuid.UUID(int=10_000 + i)),
                                  user_principal_name=f"u{i}@bench.test",
                                  display_name=f"User {i}", mail=f"u{i}@bench.test"))
             for i in range(mailboxes)]
    for user in users:
        for index in range(10):
            sim.outlook.add_event(tenant, user, {
                "subject": f"E{index}", "start_in": f"{60 + index * 90}m", "duration": "30m",
                "show_as": "busy"}, notify=False)
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.bench") as http:
        client = GraphClient(SimTokens(sim, tenant), http, base_url="https://sim.bench",
                             clock=clock)
        limit = asyncio.Semaphore(8)
        start = clock.now()

        async def read(user: User) -> int:
            async with limit:
                return len(await calendar_view(client, user.id, start,
                                               start + timedelta(hours=36)))

        began = time.perf_counter()
        counts = await asyncio.gather(*(read(user) for user in users))
        seconds = time.perf_counter() - began
    assert all(count == 10 for count in counts), set(counts)
    return {"bench": "calendar_load", "mailboxes": mailboxes, "seconds": round(seconds, 2),
            "per_calendar_ms": round(seconds / mailboxes * 1000, 2),
            "for_50000_s": round(seconds / mailboxes * 50_000, 0),
            "requests_per_person": round(client.requests_sent / mailboxes, 2)}


async def kept(people: int, events: int, per_calendar_ms: float) -> dict[str, Any]:
    """Save a day of blocks for everyone as the keeper does, then load them all back."""
    from m365pbx.service.calendar_store import CHUNK, stored_blocks
    from scratch_store import matched_people, scratch_store

    async with scratch_store() as (store, path):
        ids = list(await matched_people(store, people, "u"))
        now = time.time()
        day = tuple(CalendarBlock(PbxPresence.MEETING, now + 3600 + i * 5400,
                                  now + 5400 + i * 5400, f"Meeting number {i}")
                    for i in range(events))
        began = time.perf_counter()
        for start in range(0, len(ids), CHUNK):
            chunk = {pid: stored_blocks(day) for pid in ids[start:start + CHUNK]}
            async with store.transaction() as tx:
                await tx.calendar_blocks.save(chunk, now=SystemClock().now())
        saved = time.perf_counter() - began
        began = time.perf_counter()
        async with store.transaction() as tx:
            loaded = await tx.calendar_blocks.load(ids)
        loaded_s = time.perf_counter() - began
        assert len(loaded) == people
        size = path.stat().st_size
    first_reads = per_calendar_ms / 1000 * people
    return {"bench": "calendar_store", "people": people, "blocks": people * events,
            "save_s": round(saved, 1), "load_s": round(loaded_s, 1),
            "db_mb": round(size / 1e6, 1),
            "load_vs_first_reads": round(loaded_s / first_reads, 3)}


async def kept_subscriptions(people: int) -> dict[str, Any]:
    """Save everyone's event subscription as MailboxSubscriptions does, then load them."""
    from m365pbx.service.persistence import StoreMailboxRecords
    from m365pbx.store import TenantSpec
    from m365pbx.sync.mailbox_records import MailboxRecord
    from m365pbx.sync.mailbox_subscriptions import CONCURRENT
    from scratch_store import scratch_store

    async with scratch_store() as (store, _):
        async with store.transaction() as tx:
            await tx.tenants.create(TenantSpec("bench", "bench-id"))
        records = StoreMailboxRecords(store, "bench", "calendar", SystemClock())
        expires = SystemClock().now() + timedelta(days=1)
        users = [str(uuid.uuid4()) for _ in range(people)]
        everyone = [MailboxRecord(user, str(uuid.uuid4()), f"users/{user}/events", expires,
                                  uuid.uuid4().hex + uuid.uuid4().hex[:11])
                    for user in users]
        began = time.perf_counter()
        await records.save(everyone, [])
        saved = time.perf_counter() - began
        began = time.perf_counter()
        await records.save(everyone, [])
        renewed = time.perf_counter() - began
        began = time.perf_counter()
        loaded = await records.load()
        loaded_s = time.perf_counter() - began
        assert len(loaded) == people
    return {"bench": "subscriptions_store", "people": people, "save_s": round(saved, 1),
            "renewals_s": round(renewed, 1), "load_s": round(loaded_s, 1),
            "creates_instead_s": round(people / CONCURRENT * 1.0)}


def main() -> None:
    """Run the parts and print their JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--mailboxes", type=int, default=2_000)
    parser.add_argument("--part", choices=["subscriptions_store"], default=None,
                        help="run only this part")
    args = parser.parse_args()
    if args.part == "subscriptions_store":
        print(json.dumps(asyncio.run(kept_subscriptions(args.people))), flush=True)
        return
    print(json.dumps(asyncio.run(timers(args.people, args.events, args.burst))), flush=True)
    reads = asyncio.run(load(args.mailboxes))
    print(json.dumps(reads), flush=True)
    print(json.dumps(asyncio.run(kept(args.people, args.events, reads["per_calendar_ms"]))),
          flush=True)
    print(json.dumps(asyncio.run(kept_subscriptions(args.people))), flush=True)


if __name__ == "__main__":
    main()
