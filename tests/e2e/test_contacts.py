"""Contacts end to end: the service reads Outlook contacts and the directory from the
simulator, and PBX apps search and look up through its HTTP API (issue 23)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import generate_latest

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.core.status import PartState
from m365pbx.pbx.api import MemoryApiKeyChecker, Scope
from m365sim.clock import VirtualClock
from m365sim.directory.changes import update_user
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
        # No public URL: no change notifications, and health says why.
        notifications = health["tenants"]["contoso"]["notifications"]
        assert notifications["state"] == "off", notifications
        assert "no public webhook" in notifications["reason"]
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


def contacts_with_webhooks(server: RunningServer, sim: Simulator, tmp: Path,
                           poll_interval: str = "1d") -> Settings:
    """Settings with a public URL (the simulator delivers to loopback) and contacts read on
    the schedule only daily: what shows sooner came by change notification."""
    sim.settings.extra["notification_allow_http_loopback"] = True
    sim.subscriptions.settings.allow_http_loopback = True
    settings_for(server, tmp, webhook_port=free_port())
    path = tmp / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"].append("contacts.read")
    data["pbx_connections"][0]["contacts"] = {"enabled": True, "phone_region": "DE",
                                              "poll_interval": poll_interval}
    # Presence reconciliation is not under test: hourly keeps long runs of the clock quick.
    data["teams_to_pbx"]["reconcile_interval"] = "1h"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


async def within(check: Callable[[], Awaitable[bool]], clock: VirtualClock,
                 step: float = 0.5, wall_timeout: float = 30.0) -> float:
    """Advance the virtual clock until the (API) check holds; the virtual seconds it took."""
    loop = asyncio.get_running_loop()
    started, deadline = clock.now(), loop.time() + wall_timeout
    while not await check():
        assert loop.time() < deadline, "the expected state was not reached in time"
        await clock.advance(step)
        await asyncio.sleep(0.02)
    return (clock.now() - started).total_seconds()


def names(answer: httpx.Response) -> list[str]:
    """The display names a search answered."""
    assert answer.status_code == 200, answer.text
    return [c["display_name"] for c in answer.json()["contacts"]]


def contact_subscriptions(sim: Simulator, user_id: str | None = None) -> list[Any]:
    """The simulator's subscriptions on people's contacts (of one person, if given)."""
    return [s for s in sim.subscriptions.subscriptions.values()
            if s.resource.strip("/").casefold().endswith("/contacts")
            and (user_id is None or s.resource.strip("/").casefold()
                 == f"users/{user_id}/contacts".casefold())]


async def test_outlook_changes_show_within_one_notification_and_leavers_lose_theirs(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(contacts_with_webhooks(sim_server, sim, tmp_path), clock,
                       api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        parts = service.tenants["contoso"].parts
        sync, subscriptions = parts.contacts, parts.contact_subscriptions
        assert sync is not None and subscriptions is not None
        await eventually(lambda: sync.status.reads >= 2
                         and subscriptions.health()["active"] == 2, clock, step=0.2)
        assert len(contact_subscriptions(sim, anna.id)) == 1
        reads = sync.status.reads

        async def number_is(number: str, name: str | None) -> bool:
            answer = (await api(service, key, "/api/v1/lookup", person="anna",
                                number=number)).json()
            return answer.get("name") == name if name else not answer["found"]

        # Added in Outlook: found by number within seconds, not at the daily read.
        added = sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                                       "business_phones": ["089 7654321"]})
        assert await within(lambda: number_is("0897654321", "Neu Kunde"), clock) < 60
        # Changed: the new name and number show, the old number no longer finds it.
        sim.outlook.update_contact(tenant, anna, added.id, {
            "display_name": "Neu Kundin", "business_phones": ["089 1111111"]})
        assert await within(lambda: number_is("089 1111111", "Neu Kundin"), clock) < 60
        assert await number_is("0897654321", None)
        # Deleted: gone from search.
        sim.outlook.delete_contact(tenant, anna, added.id)

        async def gone() -> bool:
            return names(await api(service, key, "/api/v1/contacts", person="anna",
                                   q="kundin")) == []

        assert await within(gone, clock) < 60
        # Each change was read by notification (Anna only), not by a round for everyone.
        assert subscriptions.notifications >= 3
        assert sync.status.notified_reads >= 3
        assert sync.status.reads - reads == sync.status.notified_reads
        report = service.health()["contacts"]["tenants"]["contoso"]["notifications"]
        assert (report["state"], report["active"], report["error"]) == ("on", 2, None), report
        metrics = generate_latest(service.registry).decode()
        assert 'm365pbx_contact_subscriptions{state="active",tenant="contoso"} 2.0' in metrics
        # Ben leaves the PBX: his subscription is deleted, Anna's stays.
        switchboard(service).replace_users(pbx_users(PEOPLE[0]))
        await eventually(lambda: subscriptions.health()["active"] == 1
                         and not contact_subscriptions(sim, ben.id), clock, step=0.2)
        annas = contact_subscriptions(sim, anna.id)
        assert len(annas) == 1
    # At stop Anna's stays, kept for the next start to take over.
    assert contact_subscriptions(sim) == annas


async def test_a_restart_takes_over_the_contact_subscriptions(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    settings = contacts_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        subscriptions = service.tenants["contoso"].parts.contact_subscriptions
        assert subscriptions is not None
        await eventually(lambda: subscriptions.health()["active"] == 2
                         and subscriptions.writes >= 1, clock, step=0.2)
        before = sorted(s.id for s in contact_subscriptions(sim))
    await clock.advance(60)
    posts = [r for r in sim.faults.requests()
             if r["method"] == "POST" and r["path"] == "/v1.0/subscriptions"]
    restarted = clock.now()
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        parts = service.tenants["contoso"].parts
        sync, subscriptions = parts.contacts, parts.contact_subscriptions
        assert sync is not None and subscriptions is not None
        await eventually(lambda: subscriptions.restored == 2 and sync.status.reads >= 2, clock,
                         step=0.2)
        assert subscriptions.health()["active"] == 2
        assert sorted(s.id for s in contact_subscriptions(sim)) == before
        # No subscription asked for since, not even the directory's on users (kept too).
        made = [s.resource for s in sim.subscriptions.subscriptions.values()
                if s.created_at >= restarted]
        asked = [r for r in sim.faults.requests()
                 if r["method"] == "POST" and r["path"] == "/v1.0/subscriptions"]
        assert made == [] and len(asked) == len(posts)
        # A contact added right after the restart is found by its notification.
        sim.outlook.add_contact(tenant, anna, {"display_name": "Nach Neustart",
                                               "business_phones": ["089 3333333"]})

        async def found() -> bool:
            answer = (await api(service, key, "/api/v1/lookup", person="anna",
                                number="089 3333333")).json()
            return bool(answer.get("name") == "Nach Neustart")

        assert await within(found, clock) < 60
        assert subscriptions.notifications >= 1


async def test_a_removed_subscription_is_made_again_and_the_changes_read_back(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(contacts_with_webhooks(sim_server, sim, tmp_path), clock,
                       api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        subscriptions = service.tenants["contoso"].parts.contact_subscriptions
        assert subscriptions is not None
        await eventually(lambda: subscriptions.health()["active"] == 2, clock, step=0.2)
        theirs = contact_subscriptions(sim, anna.id)[0]
        # Graph drops the subscription (subscriptionRemoved); the change made meanwhile
        # notifies nobody, yet shows: the new subscription comes with a read.
        sim.subscriptions.remove_with_notice(theirs)
        sim.outlook.add_contact(tenant, anna, {"display_name": "Ungehört",
                                               "business_phones": ["089 2222222"]})

        async def found() -> bool:
            return names(await api(service, key, "/api/v1/contacts", person="anna",
                                   q="ungehort")) == ["Ungehört"]

        assert await within(found, clock) < 60
        await eventually(lambda: subscriptions.health()["active"] == 2
                         and subscriptions.known(theirs.id) is None, clock, step=0.2)
        assert len(contact_subscriptions(sim, anna.id)) == 1


async def test_without_a_subscription_contacts_are_polled_and_health_says_why(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    # Graph cannot make any subscription (presence falls back to polling as well).
    sim.faults.add_fault(FaultRule(503, path_prefix="/v1.0/subscriptions", method="POST"))
    settings = contacts_with_webhooks(sim_server, sim, tmp_path, poll_interval="5m")
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        parts = service.tenants["contoso"].parts
        sync, subscriptions = parts.contacts, parts.contact_subscriptions
        assert sync is not None and subscriptions is not None
        await eventually(lambda: sync.status.reads >= 2
                         and subscriptions.health()["error"] is not None, clock, step=0.2)
        report = service.health()["contacts"]["tenants"]["contoso"]["notifications"]
        assert (report["active"], report["missing"]) == (0, 2), report
        assert "503" in report["error"], report
        part = service.status.get("tenant/contoso/contact_subscriptions")
        assert part is not None and part.state is PartState.DEGRADED, part
        assert part.error == report["error"] and part.counters["missing"] == 2
        # Read on the schedule meanwhile: a new contact shows within poll_interval.
        sim.outlook.add_contact(tenant, anna, {"display_name": "Per Abfrage",
                                               "business_phones": ["089 3333333"]})

        async def found() -> bool:
            return names(await api(service, key, "/api/v1/contacts", person="anna",
                                   q="abfrage")) == ["Per Abfrage"]

        assert await within(found, clock, step=5.0, wall_timeout=60) <= 5 * 60 + 30
        # Graph accepts subscriptions again: they are made at the next try.
        sim.faults.clear_faults()
        await eventually(lambda: subscriptions.health()["active"] == 2, clock, step=5.0,
                         wall_timeout=60)
        assert subscriptions.health()["error"] is None
        part = service.status.get("tenant/contoso/contact_subscriptions")
        assert part is not None and part.state is PartState.OK and part.error is None


async def test_notifications_graph_could_not_deliver_are_read_after_missed(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(contacts_with_webhooks(sim_server, sim, tmp_path), clock,
                       api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        subscriptions = service.tenants["contoso"].parts.contact_subscriptions
        assert subscriptions is not None
        await eventually(lambda: subscriptions.health()["active"] == 2, clock, step=0.2)
        # The change's notification is lost; Graph says so with `missed` (graph.md 4.6).
        sim.subscriptions.settings.loss = 1.0
        sim.outlook.add_contact(tenant, anna, {"display_name": "Verloren",
                                               "business_phones": ["089 4444444"]})
        sim.subscriptions.settings.loss = 0.0
        assert subscriptions.notifications == 0
        sim.subscriptions.send_lifecycle(contact_subscriptions(sim, anna.id)[0], "missed")

        async def found() -> bool:
            return names(await api(service, key, "/api/v1/contacts", person="anna",
                                   q="verloren")) == ["Verloren"]

        assert await within(found, clock) < 60
        assert subscriptions.notifications == 0


async def test_a_notification_does_not_wait_for_a_round_held_by_a_slow_mailbox(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(contacts_with_webhooks(sim_server, sim, tmp_path), clock,
                       api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        sync = service.tenants["contoso"].parts.contacts
        subscriptions = service.tenants["contoso"].parts.contact_subscriptions
        assert sync is not None and subscriptions is not None
        await eventually(lambda: sync.status.reads >= 2
                         and subscriptions.health()["active"] == 2, clock, step=0.2)
        # Ben's mailbox answers only after five minutes (Retry-After); "Sync now" starts a
        # round of everyone that waits for it.
        slow = sim.faults.add_fault(FaultRule(503, path_prefix=f"/v1.0/users/{ben.id}/",
                                              count=1, retry_after_s=300))
        service.tenants["contoso"].sync_now()
        await eventually(lambda: slow.hits == 1, clock, step=0.2)
        sim.outlook.add_contact(tenant, anna, {"display_name": "Eilig",
                                               "business_phones": ["089 5555555"]})

        async def found() -> bool:
            return names(await api(service, key, "/api/v1/contacts", person="anna",
                                   q="eilig")) == ["Eilig"]

        assert await within(found, clock) < 60
        reads = sync.status.reads
        await eventually(lambda: sync.status.reads > reads, clock, step=5.0)  # Ben, at last
        assert sync.status.failed_reads == 0
