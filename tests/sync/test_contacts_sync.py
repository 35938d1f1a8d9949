"""Contacts end to end: m365sim's Outlook and directory → ContactsSync → the contacts API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from m365pbx.core.contacts import ContactIndex, Source
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.graph.users import list_users
from m365pbx.pbx.api import MemoryApiKeyChecker
from m365pbx.pbx.api.contacts import ContactCounters, contacts_router
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.contacts import ContactsPlan, ContactsSync
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.directory.changes import update_user
from m365sim.directory.org_contacts import add_org_contact
from m365sim.faults import FaultRule
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token

INTERVAL = 300.0
PLAN = ContactsPlan(frozenset(Source), "DE", INTERVAL)


class SimTokens:
    """Application tokens with Contacts.Read and OrgContact.Read.All from the issuer."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def token(self) -> str:
        return app_token(self.sim, ["User.Read.All", "Contacts.Read", "OrgContact.Read.All"])

    async def invalidate(self) -> None:
        return None


class People:
    """The matched people, as the hub would announce them."""

    def __init__(self, people: list[Person]) -> None:
        self.everyone = people
        self.listeners: list[Callable[[list[Person]], None]] = []

    def people(self) -> list[Person]:
        return list(self.everyone)

    def on_people(self, listener: Callable[[list[Person]], None]) -> None:
        self.listeners.append(listener)

    def set(self, people: list[Person]) -> None:
        self.everyone = people
        for listener in self.listeners:
            listener(people)


@dataclass
class World:
    sim: Simulator
    tenant: Tenant
    clock: VirtualClock
    anna: User
    ben: User
    people: People
    sync: ContactsSync
    api: httpx.AsyncClient
    key: str
    read_key: str
    counters: ContactCounters

    async def get(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        return await self.api.get(path, params=params,
                                  headers={"Authorization": f"Bearer {key or self.key}"})

    async def search(self, person: str, q: str) -> list[tuple[str, str, str]]:
        response = await self.get("/api/v1/contacts", person=person, q=q)
        assert response.status_code == 200, response.text
        return [(c["display_name"], c["source"], c["match"])
                for c in response.json()["contacts"]]


def person(pid: int, key: str, user: User) -> Person:
    return Person(pid, "office", PbxUser(key), user.id, tenant="contoso",
                  display_name=user.display_name)


@pytest.fixture
async def world(sim: Simulator, tenant: Tenant, clock: VirtualClock) -> AsyncIterator[World]:
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    sim.outlook.add_contact(tenant, anna, {
        "display_name": "Jürgen Müller", "given_name": "Jürgen", "surname": "Müller",
        "company": "Fabrikam", "emails": ["j.mueller@fabrikam.de"],
        "business_phones": ["030 1234567"]})
    sim.outlook.add_contact(tenant, anna, {"display_name": "Zoë Ærø", "folder": "Friends",
                                           "mobile_phone": "+49 170 5550100"})
    # Anna's own name for Ben's desk number beats the directory's.
    sim.outlook.add_contact(tenant, anna, {"display_name": "Benny (desk)",
                                           "business_phones": ["030 5550202"]})
    sim.outlook.add_contact(tenant, ben, {"display_name": "Bens Geheimkontakt",
                                          "mobile_phone": "+49 151 9999999"})
    update_user(sim, tenant, ben, {"businessPhones": ["+49 30 5550202"]})
    add_org_contact(sim, tenant, {"display_name": "Fabrikam Hotline", "company_name": "Fabrikam",
                                  "phones": [{"type": "business", "number": "+49 40 55555"}]})
    index = ContactIndex()
    people = People([person(1, "anna", anna), person(2, "ben", ben)])
    checker = MemoryApiKeyChecker()
    key = checker.add("phone-app", ["contacts"])
    read_key = checker.add("board", ["read"])
    counters = ContactCounters()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(sim)),
                                 base_url="https://sim.test") as http:
        graph = GraphClient(SimTokens(sim), http, base_url="https://sim.test", clock=clock,
                            retry=RetryPolicy(attempts=1))
        sync = ContactsSync("contoso", graph, index, people, clock, lambda _p: PLAN,
                            region="DE")
        sync.set_directory(await list_users(graph))
        await sync.run_once()
        app = FastAPI()
        app.include_router(contacts_router(index, sync.viewers, checker, counters))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                     base_url="http://m365pbx") as api:
            yield World(sim, tenant, clock, anna, ben, people, sync, api, key, read_key,
                        counters)


async def test_search_ignores_case_and_accents_and_finds_word_prefixes(world: World) -> None:
    assert await world.search("anna", "jurgen mu") == [
        ("Jürgen Müller", "personal", "prefix")]
    assert await world.search("anna", "ZOE AERO") == [("Zoë Ærø", "personal", "exact")]
    assert await world.search("anna", "fabri") == [
        ("Jürgen Müller", "personal", "prefix"), ("Fabrikam Hotline", "organisation", "prefix")]
    assert await world.search("anna", "Schmid") == [("Anna Schmidt", "directory", "prefix")]
    assert await world.search("anna", "Jurgan") == [("Jürgen Müller", "personal", "fuzzy")]


async def test_numbers_in_any_format_find_the_contact(world: World) -> None:
    for written in ("+49 (0)30 1234-567", "030 1234567", "+49301234567", "0049 30 1234567"):
        found = await world.search("anna", written)
        assert found[0] == ("Jürgen Müller", "personal", "exact"), written
    response = await world.get("/api/v1/lookup", person="anna", number="+49 (0)30 1234-567")
    assert response.json() == {
        "number": "+49301234567", "found": True, "name": "Jürgen Müller", "source": "personal",
        "ambiguous": False, "matches": [{
            "id": response.json()["matches"][0]["id"], "source": "personal",
            "display_name": "Jürgen Müller", "company": "Fabrikam", "job_title": "",
            "emails": ["j.mueller@fabrikam.de"],
            "phones": [{"kind": "business", "number": "030 1234567", "e164": "+49301234567"}]}]}


async def test_a_person_never_sees_another_persons_contacts(world: World) -> None:
    assert await world.search("anna", "geheim") == []
    assert await world.search("ben", "geheim") == [("Bens Geheimkontakt", "personal", "prefix")]
    assert await world.search("ben", "jurgen") == []
    anna = (await world.get("/api/v1/lookup", person="anna", number="0151 9999999")).json()
    assert anna["found"] is False
    ben = (await world.get("/api/v1/lookup", person="ben", number="0151 9999999")).json()
    assert ben["name"] == "Bens Geheimkontakt"


async def test_lookup_prefers_own_contact_then_directory_then_org(world: World) -> None:
    own = (await world.get("/api/v1/lookup", person="anna", number="+49 30 5550202")).json()
    assert (own["name"], own["source"]) == ("Benny (desk)", "personal")
    directory = (await world.get("/api/v1/lookup", person="ben", number="030 5550202")).json()
    assert (directory["name"], directory["source"]) == ("Ben Weber", "directory")
    org = (await world.get("/api/v1/lookup", person="ben", number="040 55555")).json()
    assert (org["name"], org["source"]) == ("Fabrikam Hotline", "organisation")
    assert world.counters.lookups == 3 and world.counters.lookup_hits == 3


async def test_outlook_changes_show_after_the_next_delta_round(world: World) -> None:
    sim, tenant, anna = world.sim, world.tenant, world.anna
    runner = asyncio.create_task(world.sync.run())
    try:
        await asyncio.sleep(0)
        added = sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                                       "business_phones": ["089 7654321"]})
        jurgen = next(c for c in sim.outlook.mailbox(tenant.id, anna.id).contacts.values()
                      if c.display_name == "Jürgen Müller")
        sim.outlook.update_contact(tenant, anna, jurgen.id, {"display_name": "Jürgen Schulz"})
        zoe = next(c for c in sim.outlook.mailbox(tenant.id, anna.id).contacts.values()
                   if c.display_name == "Zoë Ærø")
        sim.outlook.delete_contact(tenant, anna, zoe.id)
        assert await world.search("anna", "neu") == []  # not before the round
        reads = world.sync.status.reads
        await world.clock.advance(INTERVAL + 1)
        for _ in range(1000):  # both mailboxes read in the round
            if world.sync.status.reads >= reads + 2:
                break
            await asyncio.sleep(0.01)
        assert await world.search("anna", "neu kunde") == [("Neu Kunde", "personal", "exact")]
        assert await world.search("anna", "schulz") == [("Jürgen Schulz", "personal", "prefix")]
        assert await world.search("anna", "zoe") == []
        found = (await world.get("/api/v1/lookup", person="anna", number="089/765 43 21")).json()
        assert found["name"] == "Neu Kunde" and added.id == found["matches"][0]["id"]
    finally:
        runner.cancel()


async def test_a_departed_persons_contacts_vanish_at_once(world: World) -> None:
    _anna, ben = world.people.everyone
    world.people.set([ben])
    assert world.sync.index.owners("contoso") == {world.ben.id}
    response = await world.get("/api/v1/contacts", person="anna", q="jurgen")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown-person"


async def test_bad_input_and_a_key_without_the_contacts_scope_are_refused(world: World) -> None:
    async def refused(path: str, key: str | None = None, **params: Any) -> tuple[int, str]:
        response = await world.get(path, key, **params)
        return response.status_code, response.json()["error"]["code"]

    assert await refused("/api/v1/contacts", person="anna", q="   ") == (400, "empty-query")
    assert await refused("/api/v1/contacts", person="anna", q="x" * 10_000) == (
        400, "query-too-long")
    assert await refused("/api/v1/contacts", person="nobody", q="jurgen") == (
        404, "unknown-person")
    assert await refused("/api/v1/lookup", person="anna", number="") == (400, "empty-number")
    assert await refused("/api/v1/lookup", person="anna", number="1" * 100) == (
        400, "number-too-long")
    assert await refused("/api/v1/contacts", world.read_key, person="anna", q="jurgen") == (
        403, "insufficient-scope")
    assert await refused("/api/v1/lookup", world.read_key, person="anna", number="030") == (
        403, "insufficient-scope")
    assert world.counters.searches == 0 and world.counters.lookups == 0


async def test_results_are_paged(world: World) -> None:
    for number in range(30):
        world.sim.outlook.add_contact(world.tenant, world.anna,
                                      {"display_name": f"Kunde {number:02}"})
    world.sync.read_soon()
    await world.sync.run_once()
    first = (await world.get("/api/v1/contacts", person="anna", q="kunde", limit=25)).json()
    rest = (await world.get("/api/v1/contacts", person="anna", q="kunde", limit=25,
                            offset=25)).json()
    assert (first["total"], len(first["contacts"]), len(rest["contacts"])) == (30, 25, 5)
    names = [c["display_name"] for c in first["contacts"] + rest["contacts"]]
    assert names == [f"Kunde {number:02}" for number in range(30)]


async def test_directory_changes_between_full_syncs_are_folded_in(world: World) -> None:
    ben = world.ben.id
    world.sync.apply_directory_changes(
        [{"id": ben, "displayName": "Ben Weber", "businessPhones": ["+49 30 5550299"],
          "accountEnabled": True}], [])
    moved = (await world.get("/api/v1/lookup", person="anna", number="030 5550299")).json()
    assert (moved["name"], moved["source"]) == ("Ben Weber", "directory")
    old = (await world.get("/api/v1/lookup", person="ben", number="030 5550202")).json()
    assert old["found"] is False  # his old desk number is his no more
    world.sync.apply_directory_changes(
        [{"id": ben, "displayName": "Ben Weber", "businessPhones": ["+49 30 5550299"],
          "accountEnabled": False}], [])
    assert (await world.get("/api/v1/lookup", person="anna",
                            number="030 5550299")).json()["found"] is False
    world.sync.apply_directory_changes([], [world.anna.id])
    assert await world.search("ben", "schmidt") == []


async def test_an_unreadable_delta_link_reads_the_folder_again_in_full(world: World) -> None:
    sim, tenant, anna = world.sim, world.tenant, world.anna
    box = sim.outlook.mailbox(tenant.id, anna.id)
    jurgen = next(c for c in box.contacts.values() if c.display_name == "Jürgen Müller")
    sim.outlook.delete_contact(tenant, anna, jurgen.id)
    sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde"})
    # A link Outlook no longer reads (400 ErrorInvalidSyncStateData).
    box_state = world.sync._boxes[anna.id.lower()]
    box_state.links["contacts"] = box_state.links["contacts"].split("$deltatoken=")[0] + (
        "$deltatoken=bm90LWEtdG9rZW4")
    world.sync.read_soon()
    await world.sync.run_once()
    assert world.sync.status.state == "following"
    assert await world.search("anna", "neu kunde") == [("Neu Kunde", "personal", "exact")]
    assert await world.search("anna", "jurgen") == []  # gone while the link was dead


async def test_a_failing_mailbox_is_shown_and_read_again_a_minute_later(world: World) -> None:
    sim, tenant, anna = world.sim, world.tenant, world.anna
    sim.faults.add_fault(FaultRule(503, path_prefix=f"/v1.0/users/{anna.id}/contactFolders",
                                   count=1))
    sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde"})
    world.sync.read_soon()
    await world.sync.run_once()
    health = world.sync.health()
    assert health["state"] == "failing" and health["failed_reads"] == 1
    assert anna.id.lower() in str(health["last_error"])
    assert await world.search("anna", "jurgen") != []  # what was read stays
    await world.clock.advance(61)
    await world.sync.run_once()
    assert world.sync.health()["state"] == "following"
    assert await world.search("anna", "neu kunde") == [("Neu Kunde", "personal", "exact")]


async def test_a_deleted_contact_folder_takes_its_contacts_along(world: World) -> None:
    sim, tenant, anna = world.sim, world.tenant, world.anna
    box = sim.outlook.mailbox(tenant.id, anna.id)
    friends = box.folder_named("Friends")
    assert friends is not None and await world.search("anna", "zoe") != []
    # Outlook deletes a folder with everything in it (the simulator has no route for it).
    del box.folders[friends.id]
    for contact_id in [c.id for c in box.contacts.values() if c.folder_id == friends.id]:
        del box.contacts[contact_id]
    # And another folder's delta link dies: its full read keeps the other folders' contacts.
    state = world.sync._boxes[anna.id.lower()]
    default = next(folder for folder in state.links if folder != friends.id)
    state.links[default] = state.links[default].split("$deltatoken=")[0] + (
        "$deltatoken=bm90LWEtdG9rZW4")
    sim.outlook.add_contact(tenant, anna, {"display_name": "Zora Neu", "folder": "Kunden"})
    world.sync.read_soon()
    await world.sync.run_once()
    assert await world.search("anna", "zoe") == []
    assert [name for name, _, _ in await world.search("anna", "jurgen")] == ["Jürgen Müller"]
    assert [name for name, _, _ in await world.search("anna", "zora")] == ["Zora Neu"]
    assert len(world.sync.index.personal_ids("contoso", anna.id)) == 3


async def test_notifications_before_the_read_make_one_read_of_that_person(
        world: World) -> None:
    sim, tenant, anna, sync = world.sim, world.tenant, world.anna, world.sync
    reads = sync.status.reads
    for n in range(3):  # three changes, three notifications, before the sync comes round
        sim.outlook.add_contact(tenant, anna, {"display_name": f"Kunde {n}",
                                               "business_phones": [f"089 765432{n}"]})
        sync.read_now(anna.id.lower())
    sync.read_now("not-followed")  # a notification for nobody followed changes nothing
    runner = asyncio.create_task(sync.run())
    try:
        for _ in range(1000):
            if sync.status.reads > reads:
                break
            await asyncio.sleep(0.01)
        for _ in range(20):  # give a second read every chance to start
            await asyncio.sleep(0)
        assert (sync.status.reads, sync.status.notified_reads) == (reads + 1, 1)
        assert [name for name, _, _ in await world.search("anna", "kunde")] == [
            "Kunde 0", "Kunde 1", "Kunde 2"]
        assert await world.search("ben", "kunde") == []
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
