"""Per-simulator state of the directory part: token signer, change log, delta epochs.

Kept beside the shared `Simulator` (keyed weakly by it) so the directory part needs no
field in the shared skeleton. `Tenant.directory_version` / `User.version` (model.py)
say *that* a user changed; the change log here remembers *which properties* changed,
for `/users/delta` with `Prefer: return=minimal`, and whether a removal was permanent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from m365sim.directory.tokens import TokenSigner

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator


@dataclass(frozen=True)
class Change:
    """One recorded change of a user: the version it produced and what it touched."""

    version: int
    properties: frozenset[str] | None  # None: the whole object (created, or unknown)
    removed: str | None = None  # "changed" (soft delete) or "deleted" (permanent)


@dataclass
class DirectoryState:
    """What the directory part keeps for one simulator."""

    signer: TokenSigner = field(default_factory=TokenSigner)
    changes: dict[str, dict[str, list[Change]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    delta_epoch: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _ordered: dict[str, tuple[int, int, list[User]]] = field(default_factory=dict)

    def record(self, tenant: Tenant, user: User, properties: frozenset[str] | None,
               removed: str | None = None) -> None:
        """Remember a change the user's current version stands for."""
        self.changes[tenant.id][user.id].append(Change(user.version, properties, removed))

    def changed_since(self, tenant: Tenant, user: User, version: int) -> Change:
        """The union of the user's changes after `version` (None properties: all of them)."""
        entries = [c for c in self.changes[tenant.id].get(user.id, ()) if c.version > version]
        if not entries or entries[-1].version != user.version:
            # The user changed without a log entry (scenario load, generation): all of it.
            return Change(user.version, None, entries[-1].removed if entries else None)
        properties: set[str] = set()
        for entry in entries:
            if entry.properties is None:
                return Change(user.version, None, entries[-1].removed)
            properties |= entry.properties
        return Change(user.version, frozenset(properties), entries[-1].removed)

    def ordered_users(self, tenant: Tenant) -> list[User]:
        """The tenant's live users ordered by object id (cached per directory version)."""
        stamp = (tenant.directory_version, len(tenant.users))
        cached = self._ordered.get(tenant.id)
        if cached is not None and (cached[0], cached[1]) == stamp:
            return cached[2]
        users = sorted((u for u in tenant.users.values() if not u.deleted), key=lambda u: u.id)
        self._ordered[tenant.id] = (stamp[0], stamp[1], users)
        return users


_STATES: WeakKeyDictionary[Simulator, DirectoryState] = WeakKeyDictionary()


def directory_state(sim: Simulator) -> DirectoryState:
    """The directory part's state for `sim` (created on first use)."""
    state = _STATES.get(sim)
    if state is None:
        state = DirectoryState()
        _STATES[sim] = state
    return state
