"""`pbx_hold_down` from the configuration spaces two PBX writes for one person."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.core.policy import TeamsReading
from m365pbx.core.presence import Activity, Availability, PbxPresence, TeamsPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.store import SecretBox, generate_key
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock

TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP_ID = "6731de76-14a6-49ae-97bc-6eba6914391e"
BUSY = TeamsPresence(Availability.BUSY, Activity.BUSY)
AWAY = TeamsPresence(Availability.AWAY, Activity.AWAY)


def write_config(tmp_path: Path, **connection: object) -> Path:
    """A one-tenant configuration with one API connection carrying `connection`'s keys."""
    path = tmp_path / "m365pbx.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        "secrets": {"key_file": str(tmp_path / "secret.key")},
        "tenants": [{"name": "contoso", "tenant_id": TENANT_ID,
                     "credentials": [{"name": "graph", "client_id": APP_ID,
                                      "client_secret": "s", "permissions": ["presence.read"]}]}],
        "pbx_connections": [{"name": "office", "kind": "api", "tenant": "contoso",
                             **connection}],
    }))
    return path


async def shown_after(service: Service, clock: VirtualClock, seconds: float) -> PbxPresence:
    """What the PBX shows for anna once `seconds` have passed and the hub is idle."""
    await clock.advance(seconds)
    for _ in range(20):
        await service.hub.settled()
        await asyncio.sleep(0)
    connection = service.connections["office"]
    assert isinstance(connection, ApiConnection)
    state = connection.shown("anna")
    return PbxPresence.ONLINE if state is None else state.presence


async def test_a_second_pbx_write_waits_for_the_hold_down(tmp_path: Path) -> None:
    clock = VirtualClock()
    settings = load_config(write_config(tmp_path, pbx_hold_down="30s"), environ={})
    service = Service(settings, SecretBox([generate_key()]),
                      ServiceOptions(clock=clock, serve_http=False))
    hub_task = None
    try:
        await service.prepare()
        anna = Person(id=1, connection="office", pbx_user=PbxUser("anna"),
                      teams_user_id="user-1", tenant="contoso")
        service.hub.set_people([anna])
        hub_task = asyncio.create_task(service.hub.run())
        service.hub.teams_reading("user-1", TeamsReading(BUSY, clock.now().timestamp(), "1"))
        assert await shown_after(service, clock, 1) is PbxPresence.BUSY
        service.hub.teams_reading("user-1", TeamsReading(AWAY, clock.now().timestamp(), "2"))
        assert await shown_after(service, clock, 10) is PbxPresence.BUSY  # held down
        assert await shown_after(service, clock, 25) is PbxPresence.AWAY  # 30 s after busy
    finally:
        if hub_task is not None:
            hub_task.cancel()
            await asyncio.gather(hub_task, return_exceptions=True)
        await service.close()


def test_pbx_hold_down_is_none_unless_set(tmp_path: Path) -> None:
    settings = load_config(write_config(tmp_path), environ={})
    assert settings.pbx_connections[0].pbx_hold_down is None
