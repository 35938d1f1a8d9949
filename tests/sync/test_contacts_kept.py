"""ContactsSync with kept books: what it hands the store, and what it takes back from it."""

from __future__ import annotations

from collections.abc import Collection

import httpx

from m365pbx.core.contacts import ContactIndex, Viewer, packed
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.contacts import ContactsPlan, ContactsSync, KeptBook
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sync.test_contacts_sync import PLAN, People, SimTokens


class MemoryKept:
    """Kept books in a dict, saved whenever the sync says they changed."""

    def __init__(self) -> None:
        self.books: dict[int, KeptBook] = {}
        self.sync: ContactsSync | None = None

    async def load(self, person_ids: Collection[int]) -> dict[int, KeptBook]:
        return {pid: self.books[pid] for pid in person_ids if pid in self.books}

    def changed(self) -> None:
        assert self.sync is not None
        for pid, book in self.sync.take_unsaved().items():
            if book is None:
                self.books.pop(pid, None)
            else:
                self.books[pid] = book


def on(connection: str, pid: int, user: User) -> Person:
    return Person(pid, connection, PbxUser(user.display_name), user.id, tenant="contoso")


def new_sync(http: httpx.AsyncClient, sim: Simulator, clock: VirtualClock, people: People,
             kept: MemoryKept, plans: dict[str, ContactsPlan]) -> ContactsSync:
    graph = GraphClient(SimTokens(sim), http, base_url="https://sim.test", clock=clock,
                        retry=RetryPolicy(attempts=1))
    sync = ContactsSync("contoso", graph, ContactIndex(), people, clock,
                        lambda p: plans.get(p.connection), region="DE")
    sync.kept = kept
    kept.sync = sync
    people.set(people.everyone)  # as the first announcement after start
    return sync


async def test_one_book_per_teams_user_kept_under_the_lowest_person_id(
    sim: Simulator, tenant: Tenant, clock: VirtualClock,
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    sim.outlook.add_contact(tenant, anna, {"display_name": "Jürgen Müller",
                                           "business_phones": ["030 1234567"]})
    kept = MemoryKept()
    people = People([on("office", 7, anna), on("branch", 3, anna), on("quiet", 9, anna)])
    plans = {"office": PLAN, "branch": PLAN}  # "quiet" has contacts off
    kept.books[9] = KeptBook((), {})  # left by a run when "quiet" had them on
    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(sim)),
                                 base_url="https://sim.test") as http:
        sync = new_sync(http, sim, clock, people, kept, plans)
        await sync.run_once()
        assert list(kept.books) == [3] and packed.count(kept.books[3].book) == 1
        assert len(kept.books[3].folders) >= 1
        # A delta round that changes nothing writes nothing.
        kept.books.clear()
        sync.read_soon()
        await sync.run_once()
        assert kept.books == {}
        # The lower id leaves: the book moves to the other person's id.
        people.set([on("office", 7, anna)])
        assert list(kept.books) == [7]
        again = People([on("office", 7, anna)])
        restart = new_sync(http, sim, clock, again, kept, plans)
        await restart.run_once()
        assert restart.status.restored == 1
        viewer = Viewer(anna.id, "contoso", "DE")
        assert restart.index.lookup(viewer, "030 1234567").found is not None
        # Everyone leaves: nothing stays kept.
        again.set([])
        assert kept.books == {}
