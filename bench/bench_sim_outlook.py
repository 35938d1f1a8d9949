"""How fast the simulator answers calendar and contact reads, and drives calendar presence.

Prints one JSON line:
{"bench": "sim_outlook", "view_p50_ms": ..., "view_p99_ms": ..., "schedule_p50_ms": ...,
 "schedule_p99_ms": ..., "contacts_filter_p50_ms": ..., "calendar_transitions_per_s": ...}
- view_*: GET calendarView for one week of a mailbox with 300 events (5 daily series), all
  on one page ($top=1000), through the ASGI app;
- schedule_*: POST getSchedule for 20 mailboxes of 100 events each, one week, 30-minute
  slots, through the ASGI app;
- contacts_filter_*: GET contacts with an emailAddresses/any filter over 5,000 contacts;
- calendar_transitions_per_s: meeting starts and ends reported to the presence part per
  second of wall time while the virtual clock runs through a working day of 500 mailboxes.
Run: .venv/bin/python bench/bench_sim_outlook.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx

from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import AppRegistration, Tenant, User
from m365sim.simulator import SimSettings, Simulator

APP_ID = str(uuid.UUID(int=1))
ROUNDS = 200
SCHEDULES = 20
CONTACTS = 5_000
PRESENCE_MAILBOXES = 500


def build() -> tuple[Simulator, VirtualClock, Tenant, list[User]]:
    """A tenant whose mailboxes hold a busy week, and one large address book."""
    clock = VirtualClock()
    sim = Simulator(clock, SimSettings(base_url="https://sim.bench"))
    tenant = Tenant(id=str(uuid.UUID(int=2)), display_name="Bench", domains=["bench.test"])
    tenant.apps[APP_ID] = AppRegistration(app_id=APP_ID, display_name="bench",
                                          application_roles={"Calendars.Read", "Contacts.Read"})
    sim.directory.add_tenant(tenant)
    users = [tenant.add_user(User(id=str(uuid.UUID(int=10_000 + i)),
                                  user_principal_name=f"u{i}@bench.test",
                                  display_name=f"User {i}", mail=f"u{i}@bench.test"))
             for i in range(max(SCHEDULES, PRESENCE_MAILBOXES))]
    shows = ["busy", "tentative", "oof", "free", "workingElsewhere"]
    for index in range(300):
        spec: dict[str, Any] = {"subject": f"E{index}", "show_as": shows[index % 5],
                                "start": f"2026-01-{5 + index % 5:02d}T{8 + index % 9:02d}:"
                                         f"{(index * 7) % 60:02d}:00Z", "duration": "25m"}
        if index < 5:
            spec["recurrence"] = {"type": "daily", "count": 30}
        sim.outlook.add_event(tenant, users[0], spec, notify=False)
    for user in users[1:SCHEDULES]:
        for index in range(100):
            sim.outlook.add_event(tenant, user, {
                "start": f"2026-01-{5 + index % 5:02d}T{8 + index % 10:02d}:"
                         f"{(index * 13) % 60:02d}:00Z",
                "duration": "40m", "show_as": shows[index % 3]}, notify=False)
    for index in range(CONTACTS):
        sim.outlook.add_contact(tenant, users[0], {
            "display_name": f"Contact {index}", "emails": [f"c{index}@example.com"]},
            notify=False)
    return sim, clock, tenant, users


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of `samples` in milliseconds."""
    ordered = sorted(samples)
    return (round(statistics.median(ordered) * 1e3, 3),
            round(ordered[int(len(ordered) * 0.99) - 1] * 1e3, 3))


async def timed(call: Any, rounds: int = ROUNDS) -> list[float]:
    """Wall time of `rounds` awaited calls, each checked for a 200."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = await call()
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return timings


async def bench_requests(sim: Simulator) -> dict[str, float]:
    """calendarView, getSchedule and a contact filter through the ASGI app."""
    token = sim.issuer.access_token(tenant_id=str(uuid.UUID(int=2)), app_id=APP_ID,
                                    now=sim.clock.now(), lifetime=timedelta(hours=1),
                                    roles=["Calendars.Read", "Contacts.Read"])
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(sim))
    async with httpx.AsyncClient(transport=transport, base_url="https://sim.bench") as client:
        view = await timed(lambda: client.get(
            "/v1.0/users/u0@bench.test/calendarView", headers=headers,
            params={"startDateTime": "2026-01-05T00:00:00Z",
                    "endDateTime": "2026-01-12T00:00:00Z", "$top": "1000"}))
        body = {"schedules": [f"u{i}@bench.test" for i in range(SCHEDULES)],
                "startTime": {"dateTime": "2026-01-05T00:00:00", "timeZone": "UTC"},
                "endTime": {"dateTime": "2026-01-12T00:00:00", "timeZone": "UTC"},
                "availabilityViewInterval": 30}
        schedule = await timed(lambda: client.post(
            "/v1.0/users/u0@bench.test/calendar/getSchedule", json=body, headers=headers))
        contacts = await timed(lambda: client.get(
            "/v1.0/users/u0@bench.test/contacts", headers=headers,
            params={"$filter": "emailAddresses/any(a:a/address eq 'c4999@example.com')"}), 50)
    view_p50, view_p99 = percentiles(view)
    schedule_p50, schedule_p99 = percentiles(schedule)
    return {"view_p50_ms": view_p50, "view_p99_ms": view_p99,
            "schedule_p50_ms": schedule_p50, "schedule_p99_ms": schedule_p99,
            "contacts_filter_p50_ms": percentiles(contacts)[0]}


async def bench_presence_effects() -> float:
    """Transitions reported per second while a day of meetings runs on the virtual clock."""
    sim, clock, tenant, users = build()
    reported: list[str | None] = []
    sim.presence.set_calendar_activity = (  # type: ignore[method-assign]
        lambda tenant_id, user_id, activity: reported.append(activity))
    for index, user in enumerate(users[:PRESENCE_MAILBOXES]):
        for hour in range(8, 17, 2):
            sim.outlook.add_event(tenant, user, {
                "start": f"2026-01-05T{hour:02d}:{index % 60:02d}:00Z", "duration": "45m"},
                notify=False)
    reported.clear()
    task = asyncio.create_task(sim.outlook.run())
    for _ in range(5):
        await asyncio.sleep(0)
    started = time.perf_counter()
    await clock.advance(12 * 3600)
    elapsed = time.perf_counter() - started
    task.cancel()
    return round(len(reported) / elapsed, 1)


async def main() -> None:
    """Run the benchmarks and print one JSON line."""
    sim, _, _, _ = build()
    result: dict[str, Any] = {"bench": "sim_outlook", **await bench_requests(sim)}
    result["calendar_transitions_per_s"] = await bench_presence_effects()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
