"""Contacts kept in the store across restarts (issue 23): each person's own contacts answer
at once after a restart, even while Outlook cannot serve them; what changed meanwhile comes
with a delta round, not a full read; leavers' kept contacts go; nothing is kept in clear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from sqlalchemy import text

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.pbx.api import MemoryApiKeyChecker, Scope
from m365pbx.store import Store, StoredBook, load_secret_box
from m365pbx.sync.contacts import ContactsSync
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, settings_for, switchboard
from tests.e2e.test_contacts import PEOPLE, api, names, within
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401

WALL = 60.0  # generous: the machine may be loaded


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    make: Callable[[], str] = request.getfixturevalue("new_pg_database")
    return make()


def kept_settings(server: RunningServer, tmp: Path, database_url: str) -> Settings:
    """Contacts on (region DE, read every 5 minutes), with the store at `database_url`."""
    settings_for(server, tmp, database={"url": database_url})
    path = tmp / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"].append("contacts.read")
    data["pbx_connections"][0]["contacts"] = {"enabled": True, "phone_region": "DE",
                                              "poll_interval": "5m"}
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def parts(service: Service) -> tuple[ContactsSync, Any]:
    """The tenant's contacts sync and its keeper."""
    tenant = service.tenants["contoso"].parts
    assert tenant.contacts is not None and tenant.contacts_keeper is not None
    return tenant.contacts, tenant.contacts_keeper


async def kept_rows(service: Service) -> list[tuple[int, str]]:
    """The raw rows of the service's `contact_books`."""
    return await kept_rows_of(service.store)


async def read_and_kept(service: Service, clock: VirtualClock, people: int = 2) -> None:
    """Wait until everyone was read and their books are in the store."""
    switchboard(service).replace_users(pbx_users(*PEOPLE[:people]))
    sync, _ = parts(service)
    await eventually(lambda: sync.status.reads >= people, clock, step=0.5, wall_timeout=WALL)

    async def all_kept() -> bool:
        return len(await kept_rows(service)) == people

    await within(all_kept, clock, wall_timeout=WALL)


async def test_kept_contacts_answer_at_once_after_a_restart_outlook_cannot_serve(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, database_url: str,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                           "company_name": "Fabrikam",
                                           "business_phones": ["030 1234567"]})
    settings = kept_settings(sim_server, tmp_path, database_url)
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(settings, clock, api_keys=keys) as service:
        await read_and_kept(service, clock)
        rows = await kept_rows(service)
        assert len(rows) == 2
        # The whole book is encrypted: no name, company, number or delta link in clear.
        for _, stored in rows:
            for plain in ("Jürgen", "J\\u00fcrgen", "Müller", "jurgen", "Fabrikam",
                          "fabrikam", "1234567", "deltatoken"):
                assert plain not in stored
    # Outlook cannot serve Anna's contacts when m365pbx comes back.
    sim.faults.add_fault(FaultRule(503, path_prefix=f"/v1.0/users/{anna.id}/contact",
                                   count=100_000))
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        sync, _ = parts(service)
        await eventually(lambda: sync.status.restored == 2, clock, step=0.5,
                         wall_timeout=WALL)
        found = (await api(service, key, "/api/v1/lookup", person="anna",
                           number="+49 (0)30 1234-567")).json()
        assert (found["name"], found["source"]) == ("Jürgen Müller", "personal")
        assert names(await api(service, key, "/api/v1/contacts", person="anna",
                               q="jurg")) == ["Jürgen Müller"]
        # Ben never sees Anna's kept contacts.
        assert names(await api(service, key, "/api/v1/contacts", person="ben",
                               q="jurg")) == []
        await eventually(lambda: sync.status.failed_reads >= 1, clock, step=1.0,
                         wall_timeout=WALL)
        health = service.health()["contacts"]["tenants"]["contoso"]
        assert health["restored"] == 2 and health["state"] == "failing", health
        metrics = generate_latest(service.registry).decode()
        assert 'm365pbx_contact_books_restored{tenant="contoso"} 2.0' in metrics
        # The read that fails keeps what was restored.
        found = (await api(service, key, "/api/v1/lookup", person="anna",
                           number="030 1234567")).json()
        assert found["name"] == "Jürgen Müller"


def contact_deltas(sim: Simulator, user_id: str) -> list[dict[str, Any]]:
    """The simulator's logged contact delta requests of one person."""
    return [r for r in sim.faults.requests()
            if r["path"].startswith(f"/v1.0/users/{user_id}/contactFolders/")
            and r["path"].endswith("/contacts/delta")]


async def test_a_contact_added_while_down_comes_with_a_delta_round_not_a_full_read(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, database_url: str,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                           "business_phones": ["030 1234567"]})
    settings = kept_settings(sim_server, tmp_path, database_url)
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(settings, clock, api_keys=keys) as service:
        await read_and_kept(service, clock)
        assert all("deltatoken" not in r["query"] for r in contact_deltas(sim, anna.id))
    sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                           "business_phones": ["089 7654321"]})
    sim.faults.log.clear()
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        sync, _ = parts(service)
        await eventually(lambda: sync.status.restored == 2 and sync.status.reads >= 2, clock,
                         step=0.5, wall_timeout=WALL)
        found = (await api(service, key, "/api/v1/lookup", person="anna",
                           number="089 7654321")).json()
        assert (found["name"], found["source"]) == ("Neu Kunde", "personal")
        assert names(await api(service, key, "/api/v1/contacts", person="anna",
                               q="mull")) == ["Jürgen Müller"]
        # Every folder was read from its kept delta link: no first (full) round.
        deltas = contact_deltas(sim, anna.id)
        assert deltas and all("deltatoken" in r["query"].casefold() for r in deltas), deltas


async def test_a_refused_delta_link_falls_back_to_a_full_read(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    kept = sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                                  "business_phones": ["030 1234567"]})
    settings = kept_settings(sim_server, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    keys = MemoryApiKeyChecker()
    key = keys.add("phone-app", [Scope.CONTACTS])
    async with running(settings, clock, api_keys=keys) as service:
        await read_and_kept(service, clock, people=1)
    # Outlook no longer knows the kept links' state, and a contact went meanwhile.
    store = Store.open(settings.database.url,
                       load_secret_box(key_file=settings.secrets.key_file, environ={}))
    async with store.transaction() as tx:
        [(person_id, book)] = (await tx.contact_books.load(
            [pid for pid, _ in await kept_rows_of(store)])).items()
        await tx.contact_books.save({person_id: StoredBook(book.records, {
            folder: (number, link.split("$deltatoken=")[0] + "$deltatoken=gone")
            for folder, (number, link) in book.folders.items()}, book.format)},
            now=clock.now())
    await store.engine.dispose()
    sim.outlook.delete_contact(tenant, anna, kept.id)
    sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                           "business_phones": ["089 7654321"]})
    sim.faults.log.clear()
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(PEOPLE[0]))
        sync, _ = parts(service)
        await eventually(lambda: sync.status.restored == 1 and sync.status.reads >= 1, clock,
                         step=0.5, wall_timeout=WALL)
        assert sync.status.failed_reads == 0
        assert names(await api(service, key, "/api/v1/contacts", person="anna",
                               q="neu")) == ["Neu Kunde"]
        assert not (await api(service, key, "/api/v1/lookup", person="anna",
                              number="030 1234567")).json()["found"]
        # The kept link was tried, refused, and the folder read from its first round.
        queries = [r["query"] for r in contact_deltas(sim, anna.id)]
        assert any("deltatoken=gone" in q for q in queries), queries
        assert any("deltatoken" not in q for q in queries), queries


async def kept_rows_of(store: Store) -> list[tuple[int, str]]:
    """The raw rows of `contact_books` (person id, the stored column as it is on disk)."""
    async with store.engine.connect() as connection:
        result = await connection.execute(
            text("SELECT person_id, book_encrypted FROM contact_books ORDER BY person_id"))
        return [(int(row[0]), str(row[1])) for row in result]


async def test_a_person_who_leaves_loses_their_kept_contacts_at_once(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, database_url: str,
) -> None:
    anna, ben = (tenant.find_user(f"{n}@contoso.com") for n in ("anna", "ben"))
    assert anna is not None and ben is not None
    sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                           "business_phones": ["030 1234567"]})
    sim.outlook.add_contact(tenant, ben, {"display_name": "Bens Geheimkontakt",
                                          "mobile_phone": "0151 9999999"})
    settings = kept_settings(sim_server, tmp_path, database_url)
    async with running(settings, clock) as service:
        await read_and_kept(service, clock)
        ids = {p.key: p.id for p in service.hub.people()}
        # Ben leaves the PBX: his contacts go from memory and from the store.
        switchboard(service).replace_users(pbx_users(PEOPLE[0]))

        async def only_anna_kept() -> bool:
            return [pid for pid, _ in await kept_rows(service)] == [ids["anna"]]

        await within(only_anna_kept, clock, wall_timeout=WALL)
        assert service.contacts.index.owners("contoso") == {anna.id}
    # Contacts switched off while m365pbx was down: what was kept goes at the next start.
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["pbx_connections"][0]["contacts"]["enabled"] = False
    path.write_text(yaml.safe_dump(data))
    async with running(load_config(path, environ={}), clock) as service:
        assert service.tenants["contoso"].parts.contacts is None

        async def nothing_kept() -> bool:
            return await kept_rows(service) == []

        await within(nothing_kept, clock, wall_timeout=WALL)
