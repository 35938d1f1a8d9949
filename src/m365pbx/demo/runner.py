"""Running the demo: simulator process, m365pbx, a PBX directory, people acting."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.core.matching import has_teams_plan
from m365pbx.demo.activity import Activity, Person
from m365pbx.demo.setup import CONNECTION, SERVICE_ACCOUNTS, DemoSetup
from m365pbx.demo.simulator_process import simulator
from m365pbx.graph.presence import get_presence
from m365pbx.graph.users import list_users
from m365pbx.pbx.api.connection import ApiConnection, ShownPresence
from m365pbx.pbx.api.keys import Scope
from m365pbx.pbx.base import PbxUser
from m365pbx.service.admin_signin import create_admin
from m365pbx.service.api_keys import create_api_client
from m365pbx.store import load_secret_box

DEMO_ADMIN = "demo"


@dataclass
class DemoOptions:
    """How big, where, and for how long."""

    people: int = 300
    port: int = 8080
    sim_port: int = 0
    directory: Path | None = None
    activity_interval: float = 2.0
    duration: float | None = None
    quiet: bool = False
    seed: int | None = None


def pbx_directory(users: list[dict[str, Any]]) -> list[Person]:
    """The demo PBX's users: one per Teams-licensed person (not the service accounts)."""
    people = []
    for user in users:
        upn = str(user.get("userPrincipalName") or "")
        if not upn or upn in SERVICE_ACCOUNTS or user.get("accountEnabled") is False:
            continue
        if "assignedPlans" in user and not has_teams_plan(user["assignedPlans"]):
            continue
        phones = user.get("businessPhones")
        first = str(phones[0]) if isinstance(phones, list) and phones else ""
        extension = "".join(ch for ch in first if ch.isdigit())[-4:]
        fields = {"cn": str(user.get("displayName") or upn), "email": str(user.get("mail") or ""),
                  "extension": extension}
        people.append(Person(PbxUser(upn.split("@")[0], fields), upn))
    return people


async def run_demo(options: DemoOptions, say: Callable[[str], None] = print) -> Service:
    """Run the demo until cancelled (Ctrl-C) or `options.duration` seconds have passed."""
    with contextlib.ExitStack() as stack:
        directory = options.directory or Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="m365pbx-demo-")))
        setup = DemoSetup(directory)
        setup.write_scenario(options.people)
        say(f"starting the Microsoft 365 simulator with {options.people} people ...")
        async with simulator(setup.scenario_file, directory / "tls", port=options.sim_port) as sim:
            settings = load_config(setup.write_config(sim_url=sim.url, ca_file=sim.ca_file,
                                                      port=options.port), environ={})
            box = load_secret_box(key_file=settings.secrets.key_file, environ={})
            service = Service(settings, box, ServiceOptions())
            task = asyncio.create_task(service.run())
            started = asyncio.create_task(service.started.wait())
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
            try:
                await _play(service, sim.url, sim.ca_file, options, say)
            finally:
                service.stop()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, timeout=15)
            return service
    raise AssertionError("unreachable")  # pragma: no cover


async def _play(service: Service, sim_url: str, ca_file: Path, options: DemoOptions,
                say: Callable[[str], None]) -> None:
    connection = service.connections[CONNECTION]
    assert isinstance(connection, ApiConnection)
    users = await list_users(service.tenants["contoso"].parts.app_client)
    people = pbx_directory(users)
    connection.replace_users([p.pbx_user for p in people])
    for _ in range(300):
        if service.hub.people():
            break
        await asyncio.sleep(0.1)
    say(f"matched {len(service.hub.people())} of {len(people)} PBX users to Teams users")

    async with service.store.transaction() as tx:
        key = await create_api_client(tx, f"demo-{datetime.now(UTC):%H%M%S%f}",
                                      [Scope.READ, Scope.WRITE], now=datetime.now(UTC),
                                      actor="demo")
        # A throwaway admin whose password nobody knows: the one-time link signs it in.
        await create_admin(tx, DEMO_ADMIN, secrets.token_urlsafe(24), now=datetime.now(UTC),
                           actor="demo")
    assert service.admin_ui is not None
    link = await service.admin_ui.sessions.one_time_link(DEMO_ADMIN)
    base = f"http://127.0.0.1:{options.port}"
    names = {p.pbx_user.key: p.name for p in people}
    if not options.quiet:
        connection.on_shown(lambda shown: _tell(shown, names, say))
    say("")
    say(f"m365pbx is running: {len(people)} PBX users on the built-in presence API")
    say(f"  presence     curl -H 'Authorization: Bearer {key}' {base}/api/v1/presence")
    say(f"  people       curl -H 'Authorization: Bearer {key}' {base}/api/v1/people")
    say(f"  live stream  ws://127.0.0.1:{options.port}/api/v1/stream?key={key}")
    say(f"  admin UI     {base}/admin/link/{link}  (signs you in once, within 10 minutes)")
    say(f"  API docs     {base}/api/docs      health {base}/healthz      metrics {base}/metrics")
    say(f"  simulator    {sim_url}  (CA: {ca_file}; try `m365sim show sessions --url {sim_url}`)")
    say("  (the key is a throwaway for this demo; Ctrl-C stops everything)")
    say("")
    context = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(verify=context, timeout=10) as http:
        activity = Activity(people, connection, sim_url, http,
                            (lambda _line: None) if options.quiet else say,
                            interval=options.activity_interval, seed=options.seed,
                            teams_shows=functools.partial(_teams_shows, service))
        playing = asyncio.create_task(activity.run())
        try:
            if options.duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(options.duration)
        finally:
            playing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await playing


async def _teams_shows(service: Service, person: Person) -> str | None:
    """What Teams shows for a demo person now (read from Graph as an admin would)."""
    matched = service.hub.person_by_pbx_key(CONNECTION, person.pbx_user.key)
    if matched is None:
        return None
    reading = await get_presence(service.tenants["contoso"].parts.app_client,
                                 matched.teams_user_id)
    message = f" ({reading.status_message!r})" if reading.status_message else ""
    return f"{reading.availability} / {reading.activity}{message}"


def _tell(shown: ShownPresence, names: dict[str, str], say: Callable[[str], None]) -> None:
    note = f" ({shown.state.note})" if shown.state.note else ""
    say(f"    PBX now shows {names.get(shown.key, shown.key)}: {shown.state.presence.value}{note}")
