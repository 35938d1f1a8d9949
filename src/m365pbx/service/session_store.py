"""Presence sessions and last presence in the store, so a restart leaves no orphan in Teams.

A hub listener notes which people changed (no I/O on the hot path); a background task
writes their snapshots in one transaction per burst: our session in `presence_sessions`,
the last readings and our preferred presence in `last_presence` (side `pbx`: line state
and PBX presence; side `teams`: the person's own Teams presence as seen, and as written:
our preferred presence and whose choice the preferred presence holds). Only parts that
changed are written. At start the saved snapshots are loaded and handed to the
RestartGuard, which folds them into the hub as people become known (design.md rule 4).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, union

from m365pbx.clock import Clock
from m365pbx.core.policy import PersonState, SessionWrite
from m365pbx.core.presence import Activity, Availability, TeamsPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.service.leases import Writes
from m365pbx.store import FencedOut, NotFoundError, Repositories, Side, Store
from m365pbx.store.tables import LastPresence, PbxConnection, PresenceSession, Tenant
from m365pbx.store.tables import Person as PersonRow
from m365pbx.sync.hub import PresenceHub, TeamsSink
from m365pbx.sync.pbx_to_teams.restore import (
    CONFIRM_WITHIN,
    ORPHAN_GRACE,
    RestartGuard,
    SavedPerson,
)
from m365pbx.sync.pbx_to_teams.snapshot import (
    Snapshot,
    pbx_values,
    snapshot_from_values,
    snapshot_of,
    teams_seen_values,
    teams_written_values,
)
from m365pbx.sync.people import Person
from m365pbx.sync.supervise import describe_failure

log = logging.getLogger(__name__)

CHUNK = 200  # people per transaction: short write locks on SQLite


@dataclass
class _Rows:
    """last_presence rows of a chunk of people, written together."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    written: list[dict[str, Any]] = field(default_factory=list)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class SessionPersistence:
    """Saves each person's snapshot as it changes and restores it after a restart."""

    def __init__(
        self,
        store: Store,
        hub: PresenceHub,
        clock: Clock,
        *,
        teams: TeamsSink | None = None,
        session_id_for: Callable[[Person], str] | None = None,
        confirm_within: float = CONFIRM_WITHIN,
        orphan_grace: float = ORPHAN_GRACE,
        batch_delay: float = 0.05,
        serves: Callable[[Person], bool] = lambda _person: True,
        writes_for: Callable[[str], Writes | None] | None = None,
        refused: Callable[[str, str], None] = lambda _tenant, _reason: None,
    ) -> None:
        self.store = store
        # Several nodes: a tenant's rows are written fenced by its lease, and not at all
        # while this node does not hold it (None); `refused(tenant, reason)` is told.
        self.writes_for = writes_for or (lambda _tenant: store)
        self.refused = refused
        self.hub = hub
        self.clock = clock
        self.session_id_for = session_id_for or (lambda _person: "")
        self.batch_delay = batch_delay
        self.guard = RestartGuard(hub, teams or hub.teams, clock, forget=self._forget,
                                  confirm_within=confirm_within, orphan_grace=orphan_grace,
                                  serves=serves)
        self.writes = 0
        self.counters: Counter[str] = Counter()
        self.loaded = asyncio.Event()
        self._dirty: dict[int, Person] = {}
        self._forgotten: set[int] = set()
        self._persisted: dict[int, Snapshot] = {}
        self._tenant_of: dict[int, str] = {}  # for the saves of people who left the hub
        self._flushing = 0
        self._stamp = 0.0
        self._wake = asyncio.Event()
        hub.listen(self._changed)
        hub.on_people(self.guard.people_changed)

    @property
    def pending(self) -> int:
        """People whose change is not in the store yet."""
        return len(self._dirty) + len(self._forgotten) + self._flushing

    def _changed(self, person: Person, state: PersonState) -> None:
        self._dirty[person.id] = person
        self._tenant_of[person.id] = person.tenant
        self.guard.observe(person, state)
        self._wake.set()

    def _forget(self, person_id: int) -> None:
        self._forgotten.add(person_id)
        self._wake.set()

    async def run(self) -> None:
        """Load what was saved, restore it, then save changes until cancelled."""
        saved = await self.load()
        self.guard.load(saved)
        self.loaded.set()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._flusher())
                group.create_task(self.guard.run())
        finally:
            # A clean stop saves the last changes; a crash loses at most `batch_delay`.
            try:
                await asyncio.shield(self.flush())
            except Exception:
                log.exception("could not save the last presence changes")

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.batch_delay)  # gather a burst into one transaction
            try:
                await self.flush()
            except Exception:
                log.exception("could not save presence state; trying again")
                await asyncio.sleep(1.0)
                self._wake.set()

    # --- saving -------------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write every pending change now."""
        if not self.loaded.is_set():
            return  # nothing may overwrite saved rows before they were restored
        dirty, self._dirty = self._dirty, {}
        forgotten, self._forgotten = self._forgotten, set()
        counted = len(dirty) + len(forgotten)
        self._flushing += counted
        try:
            if forgotten:
                known = {person.id: person for person in self.hub.people()}
                for pid in forgotten:
                    dirty.setdefault(pid, known.get(pid) or Person(
                        pid, "", PbxUser(""), "", self._tenant_of.get(pid, "")))
            people = list(dirty.values())
            retry: list[Person] = []
            for start in range(0, len(people), CHUNK):
                retry += await self._save_chunk(people[start:start + CHUNK], forgotten)
        finally:
            self._flushing -= counted
        if retry:
            for person in retry:
                self._dirty.setdefault(person.id, person)
                if person.id in forgotten:
                    self._forgotten.add(person.id)
            raise RuntimeError(f"{len(retry)} people's presence state could not be saved")

    async def _save_chunk(self, chunk: list[Person], forgotten: set[int]) -> list[Person]:
        """Save a chunk, one transaction per tenant's people (each fenced by the tenant's
        lease on several nodes); return whom to try again."""
        by_tenant: dict[str, list[Person]] = {}
        for person in chunk:
            by_tenant.setdefault(person.tenant, []).append(person)
        retry: list[Person] = []
        for tenant, people in by_tenant.items():
            writes = self.writes_for(tenant)
            if writes is None:
                # Another node runs the tenant (or none): its rows are that node's.
                self._not_saved(tenant, people, "this node does not hold the tenant's lease")
                continue
            try:
                retry += await self._save_people(writes, people, forgotten)
            except FencedOut as exc:
                self._not_saved(tenant, people, str(exc))
        return retry

    def _not_saved(self, tenant: str, people: list[Person], reason: str) -> None:
        self.counters["not_saved"] += len(people)
        for person in people:
            self._persisted.pop(person.id, None)
        self.refused(tenant, reason)

    async def _save_people(self, writes: Writes, chunk: list[Person],
                           forgotten: set[int]) -> list[Person]:
        """Save people of one tenant in one transaction (else one by one); return whom to
        try again. FencedOut (a newer holder) is raised: nothing of theirs is saved."""
        retry: list[Person] = []

        async def save_all(tx: Repositories) -> dict[int, Snapshot]:
            # The last_presence rows of the whole chunk go in one statement per kind: one
            # statement per row was most of the event loop at a few hundred changes a second.
            rows = _Rows()
            saved = {person.id: await self._save(tx, person, person.id in forgotten, rows)
                     for person in chunk}
            await tx.last_presence.record_many(rows.seen, rows.written)
            return saved

        try:
            saved = await writes.write(
                save_all, what=f"the presence state of {len(chunk)} people")
        except FencedOut:
            raise
        except Exception:
            # One bad row (e.g. a person re-matched meanwhile) must not lose the rest.
            saved = {}
            for person in chunk:
                try:
                    saved[person.id] = await writes.write(
                        functools.partial(self._save, person=person,
                                          forgotten=person.id in forgotten),
                        what=f"the presence state of person {person.id}")
                except FencedOut:
                    raise
                except NotFoundError:
                    self._persisted.pop(person.id, None)  # the person left the store
                except Exception as exc:
                    log.warning("could not save the presence state of person %s: %s",
                                person.id, exc)
                    retry.append(person)
        # Only what was committed counts as saved.
        self._persisted.update(saved)
        return retry

    def _stamp_now(self, now: float) -> datetime:
        # last_presence refuses a value older than the stored one: keep our stamps rising.
        self._stamp = max(now, self._stamp + 1e-6)
        return _at(self._stamp)

    async def _save(self, tx: Repositories, person: Person, forgotten: bool,
                    rows: _Rows | None = None) -> Snapshot:
        """Write what changed since the last save; return the snapshot now in the store.

        With `rows`, the last_presence rows are collected there for one batched write.
        """
        pid = person.id
        now = self.clock.now().timestamp()
        before = self._persisted.get(pid, Snapshot())
        if forgotten:
            await tx.presence_sessions.delete(pid)
            before = replace(before, session=None)
        state = self.hub.state_of(pid)
        if state is None:
            return before
        after = snapshot_of(state, now)
        if after.session != before.session:
            if after.session is None:
                await tx.presence_sessions.delete(pid)
            else:
                presence = after.session.presence
                await tx.presence_sessions.upsert(
                    pid, session_id=self.session_id_for(person),
                    availability=presence.availability.value, activity=presence.activity.value,
                    expires_at=_at(after.session.expires_at),
                    now=_at(after.session.written_at))
            self.writes += 1
        stamp = _at(now)
        for side, new, old in ((Side.PBX, pbx_values(after), pbx_values(before)),
                               (Side.TEAMS, teams_seen_values(after), teams_seen_values(before))):
            # A reading that only repeats the same state (every poll round, a PBX's refresh)
            # is not written again: the time of the first one is as good after a restart.
            if _without_times(new) != _without_times(old):
                at = self._stamp_now(now)
                if rows is None:
                    await tx.last_presence.record_seen(pid, side, new, at=at, now=stamp)
                else:
                    rows.seen.append({"person_id": pid, "side": side, "seen_values": dict(new),
                                      "seen_at": at, "updated_at": stamp})
                self.writes += 1
        written = teams_written_values(after)
        if written != teams_written_values(before):
            if rows is None:
                await tx.last_presence.record_written(pid, Side.TEAMS, written, now=stamp)
            else:
                rows.written.append({"person_id": pid, "side": Side.TEAMS,
                                     "written_values": dict(written), "written_at": stamp,
                                     "updated_at": stamp})
            self.writes += 1
        return after

    # --- loading ------------------------------------------------------------------------------
    async def load(self, tenant: str | None = None) -> dict[int, SavedPerson]:
        """Every saved snapshot (or the tenant's), with the person it belongs to."""
        now = self.clock.now().timestamp()
        async with self.store.transaction() as tx:
            session = tx.session
            sessions_query, presence_query = select(PresenceSession), select(LastPresence)
            if tenant is not None:
                mine = (select(PersonRow.id).join(Tenant, PersonRow.tenant_id == Tenant.id)
                        .where(Tenant.name == tenant)).scalar_subquery()
                sessions_query = sessions_query.where(PresenceSession.person_id.in_(mine))
                presence_query = presence_query.where(LastPresence.person_id.in_(mine))
            sessions = {row.person_id: row for row in await session.scalars(sessions_query)}
            presence: dict[int, dict[Side, LastPresence]] = {}
            for row in await session.scalars(presence_query):
                presence.setdefault(row.person_id, {})[row.side] = row
                if row.seen_at is not None:
                    self._stamp = max(self._stamp, row.seen_at.timestamp())
            ids = union(select(PresenceSession.person_id), select(LastPresence.person_id))
            query = (select(PersonRow.id, PersonRow.pbx_key, PersonRow.teams_user_id,
                            PersonRow.display_name, PbxConnection.name, Tenant.name)
                     .join(PbxConnection, PersonRow.pbx_connection_id == PbxConnection.id)
                     .outerjoin(Tenant, PersonRow.tenant_id == Tenant.id)
                     .where(PersonRow.id.in_(ids.scalar_subquery())))
            if tenant is not None:
                query = query.where(Tenant.name == tenant)
            people = (await session.execute(query)).all()
        saved: dict[int, SavedPerson] = {}
        for pid, key, teams_user, name, connection, tenant_name in people:
            if not key or not teams_user:
                continue
            person = Person(pid, connection, PbxUser(key), teams_user, tenant_name or "", name)
            snapshot = _snapshot(sessions.get(pid), presence.get(pid, {}), now)
            saved[pid] = SavedPerson(person, snapshot)
            self._persisted[pid] = snapshot
            self._tenant_of[pid] = person.tenant
        log.info("loaded the saved presence state of %d people%s (%d sessions in Teams)",
                 len(saved), "" if tenant is None else f" of tenant {tenant}",
                 sum(1 for s in saved.values() if s.snapshot.session))
        return saved

    # --- several nodes ------------------------------------------------------------------------
    async def take_over(self, tenant: str) -> int:
        """This node took the tenant over: load what its last holder saved (the sessions it
        has in Teams), to be restored as the tenant's people join the hub; return how many
        people were saved. What this node loaded at its start may be stale by now."""
        await self.loaded.wait()
        self._leave_rows(tenant)
        saved = await self.load(tenant)
        self.guard.reload(tenant, saved)
        return len(saved)

    async def hand_over(self, tenant: str, *, within: float = 5.0) -> None:
        """The tenant's work stops here: save its last changes while the lease is held
        (fenced: refused if another node took it over meanwhile)."""
        try:
            async with asyncio.timeout(within):
                await self.flush()
        except Exception as exc:  # the next holder restores what was saved before
            log.warning("could not save the last presence changes of tenant %s at hand-over: "
                        "%s", tenant, describe_failure(exc))

    def forget_tenant(self, tenant: str) -> None:
        """Forget the tenant's people's rows and sessions: they are the next holder's now."""
        self._leave_rows(tenant)
        self.guard.drop(tenant)

    def _leave_rows(self, tenant: str) -> None:
        mine = {pid for pid, name in self._tenant_of.items() if name == tenant}
        for pid in mine:
            self._persisted.pop(pid, None)
            self._dirty.pop(pid, None)
            self._forgotten.discard(pid)
            del self._tenant_of[pid]

    async def saved_sessions(self) -> list[tuple[int, str, str]]:
        """(person id, availability, activity) of every session row: for tests and checks."""
        async with self.store.transaction() as tx:
            return [(row.person_id, row.availability, row.activity)
                    for row in await tx.presence_sessions.list_all()]


def _snapshot(session: PresenceSession | None, rows: dict[Side, LastPresence],
              now: float) -> Snapshot:
    write = None
    if session is not None and session.expires_at.timestamp() > now:
        try:
            presence = TeamsPresence(Availability(session.availability),
                                     Activity(session.activity))
        except ValueError:
            presence = None
        if presence is not None:
            write = SessionWrite(presence, session.last_written_at.timestamp(),
                                 session.expires_at.timestamp())
    pbx, teams = rows.get(Side.PBX), rows.get(Side.TEAMS)
    return snapshot_from_values(write, _values(pbx and pbx.seen_values),
                                _values(teams and teams.seen_values),
                                _values(teams and teams.written_values))


def _without_times(values: dict[str, Any]) -> dict[str, Any]:
    return {key: ({k: v for k, v in value.items() if k != "at"} if isinstance(value, dict)
                  else value) for key, value in values.items()}


def _values(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None

