"""Directory changes between full syncs: `/users/delta` rounds every minute or sooner
(issue 18, item 10).

A person added, deleted, disabled, or losing or gaining their Teams licence in Entra ID
used to show only at the next full sync (an hour by default). Now every full read starts by
taking a delta link "from now on" (`$deltatoken=latest`, which lists nobody); every
`interval` seconds, or at once when woken (a users change notification), one cheap round
asks Graph what changed since, and the changes are folded into the directory the last full
read left (`DirectorySync.apply_teams_changes`): matching runs again over the PBX users
already known, and the people, the presence subscriptions and the PBX follow. The full
sync stays as the safety net; a delta link Graph no longer serves (reset, or older than 7
days) asks for one at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from m365pbx.clock import Clock
from m365pbx.graph.errors import GraphError, M365Error
from m365pbx.graph.users import DeltaResult, delta_link_expired
from m365pbx.sync.directory import DirectorySync

log = logging.getLogger(__name__)

DeltaLinkSource = Callable[[], Awaitable[str]]
"""A delta link from now on (Graph: `/users/delta?$deltatoken=latest`)."""
ChangesSource = Callable[[str], Awaitable[DeltaResult]]
"""The users changed since a delta link, and the next link."""


@dataclass
class ChangesStatus:
    """What an admin sees of the change rounds."""

    rounds: int = 0
    applied: int = 0  # rounds that changed the people
    last_round: datetime | None = None
    last_error: str | None = None
    since: datetime | None = None  # when the current error began


class DirectoryChanges:
    """Follows one tenant's directory changes between its full syncs."""

    def __init__(self, directory: DirectorySync, latest_link: DeltaLinkSource,
                 changes: ChangesSource, clock: Clock, *, interval: float = 30.0) -> None:
        self.directory = directory
        self.latest_link = latest_link
        self.changes = changes
        self.clock = clock
        self.interval = interval
        self.link: str | None = None
        self.status = ChangesStatus()
        self._woken = asyncio.Event()

    def full_read(self, fetch: Callable[[], Awaitable[list[dict[str, Any]]]]
                  ) -> Callable[[], Awaitable[list[dict[str, Any]]]]:
        """`fetch` (the full read of the Teams users) preceded by taking a delta link."""
        async def read() -> list[dict[str, Any]]:
            # Taken before the read: a change made while it runs comes back in the next
            # round (folding it in twice changes nothing).
            try:
                link: str | None = await self.latest_link()
            except M365Error as exc:
                link = None
                self._failed(f"cannot follow directory changes: {exc.describe()}; they show "
                             "at the next full sync")
            users = await fetch()
            if link is not None:
                self.link = link
            return users

        return read

    def wake(self) -> None:
        """Ask for a round at once (a users change notification arrived)."""
        self._woken.set()

    async def run(self) -> None:
        """A round every `interval` seconds and when woken, until cancelled."""
        while True:
            sleeper = asyncio.ensure_future(self.clock.sleep(self.interval))
            woken = asyncio.ensure_future(self._woken.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                woken.cancel()
            self._woken.clear()
            try:
                await self.round_once()
            except Exception as exc:  # the store or a PBX failing must not end the tenant
                log.exception("directory changes of %s: round failed", self.directory.tenant)
                self._failed(f"applying directory changes failed: {type(exc).__name__}: {exc}")

    async def round_once(self) -> bool:
        """One round; True when it changed the people."""
        directory = self.directory
        if not directory.has_teams_users:
            return False  # no full read yet: it comes first and takes the link
        async with directory.lock:
            if self.link is None:
                try:
                    self.link = await self.latest_link()
                except M365Error as exc:
                    return self._failed(f"cannot follow directory changes: {exc.describe()}")
                log.warning("directory changes of %s: following from now on; changes made "
                            "since the last full sync show at the next one",
                            directory.tenant)
                self.status.last_error = self.status.since = None
                return False
            try:
                result = await self.changes(self.link)
            except GraphError as exc:
                if delta_link_expired(exc):
                    self.link = None
                    directory.sync_now()
                    return self._failed(f"Graph no longer serves the delta link ({exc.message}); "
                                        "a full sync runs now")
                return self._failed(f"cannot read directory changes: {exc.describe()}")
            except M365Error as exc:
                return self._failed(f"cannot read directory changes: {exc.describe()}")
            if result.delta_link:
                self.link = result.delta_link
            applied = await directory.apply_teams_changes(result.changed, result.removed)
        self.status.rounds += 1
        self.status.last_round = self.clock.now()
        self.status.last_error = None
        self.status.since = None
        if applied:
            self.status.applied += 1
            log.info("directory changes of %s: %d changed, %d removed; %d people",
                     directory.tenant, len(result.changed), len(result.removed),
                     directory.status.people)
        return applied

    def health(self) -> dict[str, Any]:
        """What /healthz shows of the change rounds."""
        status = self.status

        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {"every_seconds": self.interval, "rounds": status.rounds,
                "applied": status.applied, "last_round": when(status.last_round),
                "error": status.last_error, "since": when(status.since)}

    def _failed(self, message: str) -> bool:
        if self.status.last_error is None:
            self.status.since = self.clock.now()
        self.status.last_error = message
        log.warning("directory changes of %s: %s", self.directory.tenant, message)
        return False
