"""Keeping the contact index current for one tenant: each person's folders, org contacts.

Every person matched on a connection with `contacts` on is read once in full (every
contact folder, through delta), then only their changes every `interval` (delta links per
folder). A person who is no longer matched loses their contacts in the index at once, in
the people listener itself, not at the next round. Organisational contacts are read in
full each interval; the directory's users come from the directory sync (`set_directory`).

Where a subscription on `users/{id}/contacts` carries change notifications (the service
has a public URL and the connection's `contacts.notifications` is `auto`), a notification
makes `read_now` read that person's changes at once, beside the rounds; many notifications
before the read starts make one read. Such a person is read on the schedule only once a day, as the
reconciliation that repairs lost notifications (design.md rule 6).

Where the store keeps the books (`kept`, service/contacts_store.py), each newly followed
person's kept contacts and delta links are put back before their first read, so searches
and lookups answer at once after a restart and that read asks only for the changes. A
read that changed the book (or began a folder afresh) is kept again; a person who is no
longer followed loses their kept copy with the one in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from m365pbx.clock import Clock
from m365pbx.core.contacts import ContactIndex, Source, Viewer
from m365pbx.core.contacts.packed import Book
from m365pbx.graph.client import GraphClient
from m365pbx.graph.contacts import contact_folders, folder_delta, org_contacts
from m365pbx.graph.errors import Forbidden, GraphError, M365Error
from m365pbx.graph.users import delta_link_expired
from m365pbx.sync.contacts.entries import contact_entry, directory_entries
from m365pbx.sync.people import Person

if TYPE_CHECKING:
    from m365pbx.sync.contacts.subscriptions import ContactSubscriptions

log = logging.getLogger(__name__)

# A failed read is tried again this soon (the next round may be many minutes away).
RETRY_AFTER = 60.0
# Mailboxes read at once per tenant (bounds our burst; Outlook limits per mailbox).
CONCURRENT_READS = 8
# Reads at once for people a notification named (beside the rounds' CONCURRENT_READS).
NOTIFIED_READS = 4
# How often a person whose change notifications flow is read anyway (lost notifications).
COVERED_INTERVAL = 86_400.0
# Delta links advance at every read; a book that did not change is kept again this often
# only, so that a restart rarely finds its links expired (and reads those folders in full).
KEEP_LINKS_EVERY = 86_400.0


@dataclass(frozen=True, slots=True)
class KeptBook:
    """A person's contacts as kept across restarts: their packed book, and each folder's
    number and delta link (folder id → (number, link))."""

    book: Book
    folders: Mapping[str, tuple[int, str]]


class KeptBooks(Protocol):
    """Where the books are kept across restarts (the store, filled in by service/)."""

    async def load(self, person_ids: Collection[int]) -> dict[int, KeptBook]:
        """The kept books of these people."""
        ...

    def changed(self) -> None:
        """Books changed: take them (`ContactsSync.take_unsaved`) and keep them soon."""
        ...


@dataclass(frozen=True, slots=True)
class ContactsPlan:
    """What one connection asks: the sources its people see, its number region, how often."""

    sources: frozenset[Source]
    region: str
    interval: float  # seconds between delta rounds
    # Change notifications on the person's contacts where the service has a public URL.
    notifications: bool = False


class PeopleSource(Protocol):
    """Who is matched now, and news when that changes (the PresenceHub)."""

    def people(self) -> list[Person]:
        """Everyone matched."""
        ...

    def on_people(self, listener: Callable[[list[Person]], None]) -> None:
        """Call `listener` with everyone after each change."""
        ...


@dataclass
class ContactsStatus:
    """What /healthz shows of a tenant's contacts."""

    state: str = "starting"
    since: datetime | None = None
    last_error: str | None = None
    people: int = 0
    reads: int = 0
    failed_reads: int = 0
    notified_reads: int = 0  # reads a change notification asked for
    restored: int = 0  # people whose contacts came back from the store


@dataclass
class _Mailbox:
    """What is kept to read one person's changes: a delta link and a number per folder.

    The index keeps the number with each contact, so the ids of a folder's contacts are
    read from the index, not kept twice (a million Graph ids are some 200 MB).
    """

    links: dict[str, str] = field(default_factory=dict)
    folders: dict[str, int] = field(default_factory=dict)
    due: float = 0.0
    kept_at: float | None = None  # when the store was last given this person's book

    def folder(self, folder_id: str) -> int:
        """The number of a folder (given at first sight, from 1)."""
        if folder_id not in self.folders:
            self.folders[folder_id] = max(self.folders.values(), default=0) + 1
        return self.folders[folder_id]


class ContactsSync:
    """Keeps a tenant's part of the contact index current."""

    def __init__(self, tenant: str, client: GraphClient | None, index: ContactIndex,
                 people: PeopleSource, clock: Clock,
                 plan_for: Callable[[Person], ContactsPlan | None], *,
                 region: str = "US", unavailable: str | None = None) -> None:
        self.tenant = tenant
        self.client = client
        self.index = index
        self.people = people
        self.clock = clock
        self.plan_for = plan_for
        self.region = region  # for the directory's and org contacts' numbers
        self.unavailable = unavailable
        self.status = ContactsStatus(since=clock.now())
        self._boxes: dict[str, _Mailbox] = {}
        self._failing: dict[str, str] = {}
        self._org_due = 0.0
        self._org_error: str | None = None
        self._wake = asyncio.Event()
        self._followed: dict[str, tuple[Person, ContactsPlan]] = {}
        self._viewers: dict[str, list[tuple[str, Viewer]]] = {}
        # Change notifications: who they cover (set by their owner), who asked for a read,
        # and the owner's wake-up when the people change.
        self.covered: Callable[[str], bool] = lambda _uid: False
        self.notifications: ContactSubscriptions | None = None
        self.notifications_off: str | None = None  # why there are none, in words
        self._asked: set[str] = set()
        self._asked_wake = asyncio.Event()
        self._reading: set[str] = set()  # being read now (by a round or for a notification)
        self._listeners: list[Callable[[], None]] = []
        # The store's copy: each followed user id's book is kept under one person id (the
        # lowest of those with that Teams user), loaded once before their first read.
        self.kept: KeptBooks | None = None
        self._ids: dict[str, int] = {}
        self._seen: set[int] = set()  # person ids whose stale copies were cleared
        self._restore_tried: set[str] = set()
        self._unsaved: dict[int, KeptBook | None] = {}  # None: delete the kept copy
        people.on_people(self._people_changed)
        self._people_changed(people.people())

    # -- who is followed --------------------------------------------------------------

    def _people_changed(self, everyone: list[Person]) -> None:
        followed: dict[str, tuple[Person, ContactsPlan]] = {}
        viewers: dict[str, list[tuple[str, Viewer]]] = {}
        ids: dict[str, int] = {}
        others: set[int] = set()
        for person in everyone:
            if person.tenant != self.tenant:
                continue
            plan = self.plan_for(person)
            if plan is None:
                others.add(person.id)
                continue
            uid = person.teams_user_id.lower()
            followed.setdefault(uid, (person, plan))
            ids[uid] = min(ids.get(uid, person.id), person.id)
            viewers.setdefault(person.key, []).append((person.connection, Viewer(
                person.teams_user_id, self.tenant, plan.region, plan.sources)))
        self._viewers = viewers
        for gone in set(self._followed) - set(followed):
            person = self._followed[gone][0]
            dropped = self.index.drop_person(self.tenant, person.teams_user_id)
            self._boxes.pop(gone, None)
            self._failing.pop(gone, None)
            self._restore_tried.discard(gone)
            log.info("contacts of %s dropped (%d): no longer matched", person.teams_user_id,
                     dropped)
        self._followed = followed
        self._keep_ids(ids, others)
        self._asked &= set(followed)
        self.status.people = len(followed)
        self._wake.set()
        for listener in self._listeners:
            listener()

    def _keep_ids(self, ids: dict[str, int], others: set[int]) -> None:
        """Follow who each book is kept under: copies of people no longer followed go (and
        those a stop of contacts on their connection left while the service was down)."""
        if self.kept is None:
            self._ids = ids
            return
        now_kept = set(ids.values())
        stale = {pid for pid in self._ids.values() if pid not in now_kept}
        stale |= others - self._seen
        self._seen |= others
        before, self._ids = self._ids, ids
        for uid, pid in ids.items():
            box = self._boxes.get(uid)
            if before.get(uid, pid) != pid and box is not None:  # kept under another id now
                self._keep(uid, box)
        for pid in stale:
            self._unsaved[pid] = None
        if stale:
            self.kept.changed()

    def _keep(self, uid: str, box: _Mailbox) -> None:
        """Have the store keep this person's book and delta links as they are now."""
        if self.kept is None or uid not in self._ids:
            return
        owner = self._followed[uid][0].teams_user_id
        self._unsaved[self._ids[uid]] = KeptBook(
            self.index.book(self.tenant, owner),
            {folder: (number, box.links[folder]) for folder, number in box.folders.items()
             if folder in box.links})
        box.kept_at = self.clock.now().timestamp()
        self.kept.changed()

    def take_unsaved(self) -> dict[int, KeptBook | None]:
        """The books changed since the last call by person id, None for those to forget."""
        unsaved, self._unsaved = self._unsaved, {}
        return unsaved

    def unsaved_again(self, books: dict[int, KeptBook | None]) -> None:
        """Books the keeper could not save: kept for its next try unless newer ones came."""
        for person_id, book in books.items():
            self._unsaved.setdefault(person_id, book)

    async def _restore(self) -> None:
        """Put back the kept books of the people followed since the last call."""
        assert self.kept is not None
        fresh = {uid: pid for uid, pid in self._ids.items()
                 if uid not in self._boxes and uid not in self._restore_tried}
        if not fresh:
            return
        self._restore_tried |= fresh.keys()
        started = asyncio.get_running_loop().time()
        try:
            kept = await self.kept.load(fresh.values())
        except Exception as exc:  # the reads that follow rebuild everything anyway
            log.warning("contacts of tenant %s not restored (read in full instead): %s",
                        self.tenant, exc)
            return
        restored = 0
        for uid, pid in fresh.items():
            book = kept.get(pid)
            if (book is None or uid in self._boxes or uid in self._reading
                    or self._ids.get(uid) != pid):
                continue  # nothing kept, read meanwhile, or no longer followed
            self.index.set_book(self.tenant, self._followed[uid][0].teams_user_id, book.book)
            self._boxes[uid] = _Mailbox(
                links={folder: link for folder, (_, link) in book.folders.items()},
                folders={folder: number for folder, (number, _) in book.folders.items()},
                kept_at=self.clock.now().timestamp())  # due at once: a delta round
            restored += 1
        self.status.restored += restored
        if restored:
            log.info("contacts of %d people of tenant %s restored from the store in %.1f s",
                     restored, self.tenant, asyncio.get_running_loop().time() - started)

    def on_followed(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever the people followed may have changed."""
        self._listeners.append(listener)

    def notified_people(self) -> dict[str, str]:
        """Lower-case user id → Teams user id of everyone whose contacts notifications cover."""
        return {uid: person.teams_user_id for uid, (person, plan) in self._followed.items()
                if plan.notifications and Source.PERSONAL in plan.sources}

    def read_now(self, uid: str) -> None:
        """Read one person's changes at once (a change notification said so)."""
        if uid not in self._followed:
            return
        # Marked, not read here: many notifications before the read starts make one read,
        # and one arriving during a read makes one more after it.
        self._asked.add(uid)
        self._asked_wake.set()

    def viewers(self, key: str, connection: str | None = None) -> list[Viewer]:
        """What each person with this PBX key (on `connection`, if given) may see."""
        return [viewer for on, viewer in self._viewers.get(key, ())
                if connection is None or on == connection]

    def _wants(self, source: Source) -> bool:
        return any(source in plan.sources for _, plan in self._followed.values())

    # -- directory --------------------------------------------------------------------

    def set_directory(self, users: Iterable[Mapping[str, Any]]) -> int:
        """Take the Teams users the directory sync read (phones, mail) as the directory."""
        return self.index.replace_shared(self.tenant, Source.DIRECTORY,
                                         directory_entries(users, self.region))

    def apply_directory_changes(self, changed: Iterable[Mapping[str, Any]],
                                removed: Iterable[str]) -> None:
        """Fold the directory's changed and removed users in (between full syncs)."""
        for user in changed:
            user_id = str(user.get("id") or "")
            found = directory_entries([user], self.region)
            if found:
                self.index.put_shared(self.tenant, Source.DIRECTORY, found[0])
            elif user_id:  # disabled, or neither phone nor mail any more
                self.index.remove_shared(self.tenant, Source.DIRECTORY, user_id)
        for user_id in removed:
            self.index.remove_shared(self.tenant, Source.DIRECTORY, user_id)

    # -- reading ----------------------------------------------------------------------

    def health(self) -> dict[str, object]:
        """What /healthz shows."""
        status = self.status
        notifications: dict[str, Any] = (
            {"state": "off", "reason": self.notifications_off} if self.notifications is None
            else {"state": "on", **self.notifications.health()})
        return {"state": status.state,
                "since": None if status.since is None else status.since.isoformat(),
                "last_error": status.last_error, "people": status.people,
                "reads": status.reads, "failed_reads": status.failed_reads,
                "notified_reads": status.notified_reads, "restored": status.restored,
                "notifications": notifications}

    def read_soon(self) -> None:
        """Read everyone's changes now ("Sync now")."""
        for box in self._boxes.values():
            box.due = 0.0
        self._org_due = 0.0
        self._wake.set()

    async def run(self) -> None:
        """Read contacts as they come due, and whoever a notification names at once,
        until cancelled."""
        if self.unavailable is not None or self.client is None:
            self._set_state("off", self.unavailable or "no Graph client")
            log.warning("contacts are off for tenant %s: %s", self.tenant, self.unavailable)
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._rounds())
            group.create_task(self._notified(group))

    async def _rounds(self) -> None:
        while True:
            self._wake.clear()
            await self.run_once()
            now = self.clock.now().timestamp()
            dues = [box.due for box in self._boxes.values()]
            if self._wants(Source.ORGANISATION):
                dues.append(self._org_due)
            wake = min(dues, default=now + 3600.0)
            sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, wake - now)))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()

    async def _notified(self, group: asyncio.TaskGroup) -> None:
        """Read the people notifications named, each on its own beside the rounds: a round
        of 50,000 first reads takes minutes, and one slow mailbox must not hold the rest."""
        limit = asyncio.Semaphore(NOTIFIED_READS)
        waiting: set[str] = set()

        async def read(uid: str) -> None:
            try:
                await self._read(uid, limit)
            finally:
                waiting.discard(uid)
                self._report()

        while True:
            await self._asked_wake.wait()
            self._asked_wake.clear()
            # Those the round reads right now stay marked: its read ends by waking us.
            for uid in list(self._asked):
                if uid not in self._reading and uid not in waiting:
                    waiting.add(uid)
                    group.create_task(read(uid))

    async def run_once(self) -> None:
        """Read everyone who is due (new people in full, the others' changes)."""
        if self.kept is not None:
            await self._restore()
        now = self.clock.now().timestamp()
        limit = asyncio.Semaphore(CONCURRENT_READS)
        due = [uid for uid in self._followed
               if self._boxes.get(uid) is None or self._boxes[uid].due <= now]
        tasks = [self._read(uid, limit, due_only=True) for uid in due]
        if self._wants(Source.ORGANISATION) and self._org_due <= now:
            tasks.append(self._read_org())
        await asyncio.gather(*tasks)
        self._report()

    async def _read(self, uid: str, limit: asyncio.Semaphore, *, due_only: bool = False) -> None:
        assert self.client is not None
        async with limit:
            entry = self._followed.get(uid)
            if entry is None or uid in self._reading:  # gone, or read by the other lane
                return
            person, plan = entry
            known = self._boxes.get(uid)
            if (due_only and known is not None and uid not in self._asked
                    and known.due > self.clock.now().timestamp()):
                return  # read for a notification while this waited its turn
            box = known or _Mailbox()
            asked = uid in self._asked
            self._asked.discard(uid)  # what is asked from now on needs another read
            self._reading.add(uid)
            before = self.index.book(self.tenant, person.teams_user_id)
            try:
                afresh = await self._read_box(person, plan, box)
            except M365Error as exc:
                self.status.failed_reads += 1
                reason = str(exc) if not isinstance(exc, Forbidden) else (
                    f"{exc} (is Contacts.Read granted to the app?)")
                self._failing[uid] = reason
                box.due = self.clock.now().timestamp() + RETRY_AFTER
                log.warning("contacts read failed", extra={"user": uid, "reason": reason})
                if uid in self._followed:
                    self._boxes[uid] = box
                return
            finally:
                self._reading.discard(uid)
                if uid in self._asked:  # notified during the read: once more, at once
                    self._asked_wake.set()
        if uid not in self._followed:  # left while being read: keep nothing of them
            self.index.drop_person(self.tenant, person.teams_user_id)
            return
        self.status.reads += 1
        self.status.notified_reads += asked
        self._failing.pop(uid, None)
        interval = max(plan.interval, COVERED_INTERVAL) if self.covered(uid) else plan.interval
        now = self.clock.now().timestamp()
        box.due = now + interval
        self._boxes[uid] = box
        if (afresh or box.kept_at is None or box.kept_at + KEEP_LINKS_EVERY <= now
                or self.index.book(self.tenant, person.teams_user_id) != before):
            self._keep(uid, box)

    async def _read_box(self, person: Person, plan: ContactsPlan, box: _Mailbox) -> bool:
        """Read a person's changes into the index; return whether a folder began afresh."""
        assert self.client is not None
        owner = person.teams_user_id
        folders = await contact_folders(self.client, owner)
        afresh = bool(set(box.folders) - set(folders))
        for vanished in set(box.folders) - set(folders):
            number = box.folders.pop(vanished)
            for contact_id in self.index.personal_ids(self.tenant, owner, number):
                self.index.remove_personal(self.tenant, owner, contact_id)
            box.links.pop(vanished, None)
        for folder in folders:
            link = box.links.get(folder)
            try:
                changes = await folder_delta(self.client, owner, folder, link)
            except GraphError as exc:
                # Expired (410, syncStateNotFound) or no longer readable (400
                # ErrorInvalidSyncStateData): only a new first round of the folder helps.
                if link is None or not (delta_link_expired(exc) or exc.status == 400):
                    raise
                log.info("contact delta of %s restarts: %s", owner, exc)
                changes = await folder_delta(self.client, owner, folder)
                link = None
            number = box.folder(folder)
            afresh = afresh or link is None
            if link is None:  # a first round lists everything: what it lacks is gone
                listed = {c.id for c in changes.changed}
                for contact_id in self.index.personal_ids(self.tenant, owner, number) - listed:
                    self.index.remove_personal(self.tenant, owner, contact_id)
            for contact in changes.changed:
                self.index.put_personal(self.tenant, owner,
                                        contact_entry(contact, Source.PERSONAL, plan.region),
                                        number)
            for contact_id in changes.removed:
                self.index.remove_personal(self.tenant, owner, contact_id)
            box.links[folder] = changes.delta_link
        return afresh

    async def _read_org(self) -> None:
        assert self.client is not None
        interval = min((plan.interval for _, plan in self._followed.values()
                        if Source.ORGANISATION in plan.sources), default=3600.0)
        try:
            found = await org_contacts(self.client)
        except M365Error as exc:
            self._org_error = str(exc) if not isinstance(exc, Forbidden) else (
                f"{exc} (is OrgContact.Read.All granted to the app?)")
            self._org_due = self.clock.now().timestamp() + RETRY_AFTER
            log.warning("organisational contacts read failed",
                        extra={"tenant": self.tenant, "reason": self._org_error})
            return
        self._org_error = None
        self.index.replace_shared(self.tenant, Source.ORGANISATION,
                                  [contact_entry(c, Source.ORGANISATION, self.region)
                                   for c in found])
        self._org_due = self.clock.now().timestamp() + interval

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.status.state:
            self.status.since = self.clock.now()
        self.status.state = state
        self.status.last_error = error

    def _report(self) -> None:
        problems = [f"contacts of {uid}: {reason}" for uid, reason in self._failing.items()]
        if self._org_error is not None:
            problems.insert(0, f"organisational contacts: {self._org_error}")
        if problems:
            more = len(problems) - 1
            self._set_state("failing", problems[0] + (f" (and {more} more)" if more else ""))
        elif not self._followed:
            self._set_state("idle: nobody matched on a connection with contacts on")
        else:
            self._set_state("following")
