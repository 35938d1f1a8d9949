"""Contacts end to end: the service reads Outlook contacts and the directory from the
simulator, and PBX apps search and look up through its HTTP API (issue 23)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import generate_latest

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.pbx.api import MemoryApiKeyChecker, Scope
from m365sim.clock import VirtualClock
from m365sim.directory.changes import update_user
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, settings_for, switchboard

PEOPLE = (("anna", "Anna Schmidt"), ("ben", "Ben Weber"))


def contacts_settings(server: RunningServer, tmp: Path) -> Settings:
    """The e2e settings with `contacts:` switched on (region DE) and contacts.read granted."""
    settings_for(server, tmp)
    path = tmp / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"].append("contacts.read")
    data["pbx_connections"][0]["contacts"] = {"enabled": True, "phone_region": "DE",
                                              "poll_interval": "5m"}
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


async def api(service: Service, key: str, path: str, **params: Any) -> httpx.Response:
    """A request to the service's HTTP API, as a PBX app makes it."""
    listen = service.settings.listen
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://{listen.host}:{listen.port}{path}", params=params,
                              headers={"Authorization": f"Bearer {key}"})


async def test_pbx_apps_search_and_look_up_through_the_service(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                           "business_phones": ["030 1234567"]})
    sim.outlook.add_contact(tenant, ben, {"display_name": "Bens Geheimkontakt",
                                          "mobile_phone": "0151 9999999"})
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    reader = keys.add("board", [Scope.READ])
    async with running(contacts_settings(sim_server, tmp_path), clock,
                       api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        sync = service.tenants["contoso"].parts.contacts
        assert sync is not None
        await eventually(lambda: sync.status.reads >= 2, clock, step=0.5)
        found = (await api(service, key, "/api/v1/lookup", person="anna",
                           number="+49 (0)30 1234-567")).json()
        assert (found["name"], found["source"]) == ("Jürgen Müller", "personal")
        # Anna's desk number comes from the directory the directory sync read.
        desk = (await api(service, key, "/api/v1/lookup", person="ben",
                          number="030 5550201")).json()
        assert (desk["name"], desk["source"]) == ("Anna Schmidt", "directory")
        search = (await api(service, key, "/api/v1/contacts", person="anna", q="jurg")).json()
        assert [c["display_name"] for c in search["contacts"]] == ["Jürgen Müller"]
        assert (await api(service, key, "/api/v1/contacts", person="anna",
                          q="geheim")).json()["contacts"] == []
        refused = await api(service, reader, "/api/v1/contacts", person="anna", q="jurg")
        assert refused.status_code == 403
        # A contact added in Outlook shows after the next delta round.
        sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                               "business_phones": ["089 7654321"]})
        reads = sync.status.reads
        await eventually(lambda: sync.status.reads >= reads + 2, clock, step=10.0)
        added = (await api(service, key, "/api/v1/lookup", person="anna",
                           number="0897654321")).json()
        assert added["name"] == "Neu Kunde"
        health = service.health()["contacts"]
        assert health["tenants"]["contoso"]["state"] == "following", health
        assert health["entries"]["personal"] == 3
        metrics = generate_latest(service.registry).decode()
        assert 'm365pbx_contact_lookups_total{outcome="found"} 3.0' in metrics
        assert "m365pbx_contact_lookup_hit_ratio 1.0" in metrics
        assert 'm365pbx_contact_index_entries{source="personal"} 3.0' in metrics
        # A directory change shows within the directory's delta rounds (30 s).
        update_user(sim, tenant, anna, {"businessPhones": ["+49 30 5550299"]})
        async def anna_moved() -> bool:
            answer = await api(service, key, "/api/v1/lookup", person="ben",
                               number="030 5550299")
            return bool(answer.json()["found"])
        for _ in range(120):
            if await anna_moved():
                break
            await clock.advance(1.0)
        assert await anna_moved()
        # Ben leaves the PBX: his contacts are gone at once.
        switchboard(service).replace_users(pbx_users(PEOPLE[0]))
        await eventually(lambda: len(service.hub.people()) == 1, clock, step=0.5)
        assert service.contacts.index.owners("contoso") == {anna.id}
