"""Directory sync: Teams-licensed users from Graph, PBX users from each connection, matched
into the people the hub serves (issue 12, item 3).

A failed or empty fetch never replaces a good directory (a failure Telia users report:
an empty mapping stopped all presence until the next hourly run).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from m365pbx.clock import Clock
from m365pbx.core.matching import MatchOptions, MatchResult, match_users, microsoft_properties
from m365pbx.graph.errors import M365Error
from m365pbx.pbx.base import PbxConnection, PbxUser
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.sync.people import Person
from m365pbx.sync.supervise import describe_failure

log = logging.getLogger(__name__)

# What the sync itself reads of a Teams user besides matching (the name and the UPN).
OWN_PROPERTIES = frozenset({"id", "displayName", "userPrincipalName"})

# A failed sync is tried again after 5 s, 10 s, ... up to 5 minutes (with jitter), not at
# the next full interval: a tenant that could not sign in at start-up comes up by itself.
RETRY_BACKOFF = Backoff(initial=5.0, maximum=300.0)


@dataclass(frozen=True, slots=True)
class StoredPerson:
    """A matched person as the store keeps them, with their stable id."""

    id: int
    pbx_key: str
    teams_user_id: str
    display_name: str


class PeopleStore(Protocol):
    """Keeps match results; returns the matched people with their ids."""

    async def replace(self, connection: str, result: MatchResult,
                      teams_users: Mapping[str, Mapping[str, Any]]) -> list[StoredPerson]:
        """Store one connection's match result; return its matched people."""
        ...


@dataclass
class ConnectionDirectory:
    """One PBX connection's part of the directory."""

    name: str
    connection: PbxConnection
    options: MatchOptions
    result: MatchResult | None = None
    users: dict[str, PbxUser] = field(default_factory=dict)
    # Where the PBX's users come from when the connection cannot list them (a file).
    source: Callable[[], Awaitable[list[PbxUser]]] | None = None

    async def list_users(self) -> list[PbxUser]:
        """The PBX's users, from the source if there is one, else from the connection."""
        return await (self.source() if self.source is not None
                      else self.connection.list_users())


def teams_user_properties(connections: Iterable[ConnectionDirectory]) -> frozenset[str]:
    """The Teams user properties a sync over these connections reads (the rest may be dropped)."""
    properties = OWN_PROPERTIES
    for directory in connections:
        properties |= microsoft_properties(directory.options)
    return properties


@dataclass
class DirectoryStatus:
    """What an admin sees: last success, last error, and the counts."""

    last_success: datetime | None = None
    last_error: str | None = None
    teams_users: int = 0
    people: int = 0
    summaries: dict[str, dict[str, object]] = field(default_factory=dict)
    # When the present state (not synced yet, synced, or failing) began.
    since: datetime | None = None


class DirectorySync:
    """Keeps one tenant's people current: periodically, and at once on request."""

    def __init__(
        self,
        tenant: str,
        fetch_teams_users: Callable[[], Awaitable[list[dict[str, Any]]]],
        connections: Sequence[ConnectionDirectory],
        store: PeopleStore,
        on_people: Callable[[list[Person]], None],
        clock: Clock,
        *,
        interval: float = 3600.0,
        keep_teams_users: bool = False,
    ) -> None:
        self.tenant = tenant
        self.fetch_teams_users = fetch_teams_users
        self.connections = list(connections)
        self.store = store
        self.on_people = on_people
        self.clock = clock
        self.interval = interval
        self.status = DirectoryStatus()
        self._people: dict[str, list[Person]] = {}
        self._announced: list[Person] | None = None
        self._now = asyncio.Event()
        self.status.since = clock.now()
        self._failures = 0
        self._retry_after: float | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        # The Teams users of the last full read, by id, for directory changes to be folded
        # into (sync/directory_delta.py); kept only when something follows the changes.
        self.keep_teams_users = keep_teams_users
        self._teams: dict[str, dict[str, Any]] | None = None
        # One change of the people at a time: a full sync or the folding in of changes.
        self.lock = asyncio.Lock()

    def sync_now(self) -> None:
        """Ask for a sync at once ("Sync now")."""
        self._now.set()

    async def run(self) -> None:
        """Sync at start, then every `interval` and on request, until cancelled."""
        while True:
            # Cleared before the sync: a request made while it runs asks for one more.
            self._now.clear()
            if await self.sync_once():
                self._failures = 0
                wait = self.interval
            else:
                wait = min(self.interval, RETRY_BACKOFF.delay(self._failures, self._retry_after,
                                                              rng=self._rng))
                self._failures += 1
            sleeper = asyncio.ensure_future(self.clock.sleep(wait))
            asked = asyncio.ensure_future(self._now.wait())
            try:
                await asyncio.wait({sleeper, asked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                asked.cancel()

    async def sync_once(self) -> bool:
        """One full sync; False (and the previous people kept) when anything is missing."""
        async with self.lock:
            started = time.perf_counter()
            ok = await self._sync_once()
            self._log_summary(ok, time.perf_counter() - started)
            return ok

    def _log_summary(self, ok: bool, seconds: float) -> None:
        """One line per sync with its counts (as fields too, for JSON logs)."""
        counts = {"people": self.status.people, "matched": 0, "unmatched_pbx": 0,
                  "unmatched_teams": 0, "ambiguous": 0, "pbx_users": 0}
        for summary in self.status.summaries.values():
            for name in ("matched", "unmatched_pbx", "ambiguous", "pbx_users"):
                value = summary.get(name, 0)
                counts[name] += value if isinstance(value, int) else 0
        # Each connection matches against every Teams user: unmatched is matched by none.
        left: set[str] | None = None
        for directory in self.connections:
            if directory.result is not None:
                keys = {u.key for u in directory.result.unmatched if u.side == "teams"}
                left = keys if left is None else left & keys
        counts["unmatched_teams"] = len(left or ())
        outcome = "" if ok else f"; incomplete, kept what it had: {self.status.last_error}"
        log.info("directory sync of %s: %d people (%d matched, %d PBX and %d Teams users "
                 "unmatched, %d ambiguous) in %.2f s%s", self.tenant, counts["people"],
                 counts["matched"], counts["unmatched_pbx"], counts["unmatched_teams"],
                 counts["ambiguous"], seconds, outcome,
                 extra={"directory_sync": "summary", "tenant": self.tenant, "ok": ok,
                        "teams_users": self.status.teams_users, "seconds": round(seconds, 3),
                        **counts})

    async def _sync_once(self) -> bool:
        self._retry_after = None
        try:
            return await self._read_and_match()
        except Exception as exc:  # a bug or the store: shown and retried, the tenant goes on
            log.exception("directory sync of %s failed", self.tenant)
            return self._failed(f"directory sync failed: {describe_failure(exc)}")

    async def _read_and_match(self) -> bool:
        try:
            teams_users = await self.fetch_teams_users()
        except M365Error as exc:
            self._retry_after = getattr(exc, "retry_after", None)
            return self._failed(f"cannot read users from Microsoft 365: {exc.describe()}")
        if not teams_users and self.status.teams_users:
            return self._failed("Microsoft 365 returned no users; keeping the previous "
                                f"directory of {self.status.teams_users}")
        by_id = {str(u.get("id")): u for u in teams_users if u.get("id")}
        problems: list[str] = []
        changed = False
        for directory in self.connections:
            try:
                pbx_users = await directory.list_users()
            except Exception as exc:  # a PBX answering garbage must not stop the others
                problems.append(f"cannot read users of PBX connection {directory.name!r}: {exc}")
                continue
            if not pbx_users and directory.users:
                problems.append(f"PBX connection {directory.name!r} returned no users; keeping "
                                f"the previous {len(directory.users)}")
                continue
            await self._match_and_store(directory, pbx_users, teams_users, by_id)
            changed = True
        count = len(teams_users)
        self._teams = by_id if self.keep_teams_users else None
        # Let go of every Teams user before the hub takes the new people: the hub's update is
        # the peak of a start-up (docs/benchmarks.md, 50,000 people).
        del teams_users, by_id
        if changed:
            self._announce()
        self.status.teams_users = count
        if problems:
            return self._failed("; ".join(problems))
        first = self.status.last_success is None
        self.status.last_success = self.clock.now()
        if self.status.last_error is not None:
            log.info("directory sync of %s works again", self.tenant)
        if first or self.status.last_error is not None:
            self.status.since = self.status.last_success
        self.status.last_error = None
        return True

    async def _match_and_store(self, directory: ConnectionDirectory, pbx_users: list[PbxUser],
                               teams_users: list[dict[str, Any]],
                               by_id: Mapping[str, Mapping[str, Any]]) -> None:
        directory.users = {user.key: user for user in pbx_users}
        # Matching reads the PBX users as they are: no copy of them (50,000 at start-up).
        result = match_users(pbx_users, teams_users, directory.options)
        directory.result = result
        stored = await self.store.replace(directory.name, result, by_id)
        self._people[directory.name] = [
            Person(id=p.id, connection=directory.name, pbx_user=directory.users[p.pbx_key],
                   teams_user_id=p.teams_user_id, tenant=self.tenant,
                   display_name=p.display_name,
                   upn=str(by_id.get(p.teams_user_id, {}).get("userPrincipalName") or ""))
            for p in stored if p.pbx_key in directory.users
        ]
        await directory.connection.watch([p.pbx_user for p in self._people[directory.name]])
        self.status.summaries[directory.name] = result.summary()

    def _announce(self) -> None:
        everyone = [p for people in self._people.values() for p in people]
        # The same people again (a PBX re-sending its users) must not start a poll round,
        # re-plan subscriptions or restore saved state once more.
        if everyone != self._announced:
            self.on_people(everyone)
            self._announced = everyone
        self.status.people = len(everyone)

    @property
    def idle(self) -> bool:
        """Whether no sync or change round runs now and no sync waits to run."""
        return not self._now.is_set() and not self.lock.locked()

    @property
    def has_teams_users(self) -> bool:
        """Whether a full read's Teams users are kept for changes to be folded into."""
        return self._teams is not None

    async def apply_teams_changes(self, changed: Sequence[dict[str, Any]],
                                  removed: Iterable[str]) -> bool:
        """Fold changed and removed Teams users into the kept directory and match again with
        the PBX users already read (no full read); False when nothing matching reads changed.

        Call with `lock` held.
        """
        teams = self._teams
        if teams is None:
            return False
        different = False
        for user_id in removed:
            different |= teams.pop(user_id, None) is not None
        for user in changed:
            user_id = str(user.get("id") or "")
            if user_id and teams.get(user_id) != user:
                teams[user_id] = user
                different = True
        if not different:
            return False
        users = list(teams.values())
        for directory in self.connections:
            if directory.result is not None:  # a connection never read waits for a full sync
                await self._match_and_store(directory, list(directory.users.values()),
                                            users, teams)
        self.status.teams_users = len(teams)
        self._announce()
        return True

    def people(self) -> list[Person]:
        """Everyone matched across this tenant's connections."""
        return [p for people in self._people.values() for p in people]

    def _failed(self, message: str) -> bool:
        if self.status.last_error is None:
            self.status.since = self.clock.now()
        self.status.last_error = message
        log.warning("directory sync of %s: %s", self.tenant, message)
        return False
