"""What the admin UI changes in the running service: a PBX connection's mapping overlay,
and its pins and exclusions. Each change is stored, audited and applied at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from m365pbx.clock import Clock
from m365pbx.config import Settings
from m365pbx.core.mapping import CompiledMapping, MappingError, MappingOverlay
from m365pbx.service.mapping_view import UI_SOURCE, Draft, draft_text, read_draft, rules_of
from m365pbx.store import Repositories, Store
from m365pbx.store.tables import EXCLUDE, PIN, MappingOverlayRow, MatchingOverrideRow
from m365pbx.sync.hub import PresenceHub

if TYPE_CHECKING:
    from m365pbx.service.tenant import TenantRuntime

log = logging.getLogger(__name__)

FOLLOW_INTERVAL = 30.0
"""Seconds between looks at the store for what another process saved."""


class AdminEdits:
    """The admin UI's mapping overlays, pins and exclusions: kept, audited, in effect."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, hub: PresenceHub,
                 tenants: Mapping[str, TenantRuntime], forget_policies: Callable[[], None]
                 ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.hub = hub
        self.tenants = tenants
        self.forget_policies = forget_policies
        self.overlays: dict[str, MappingOverlay] = {}
        self._overlays_seen: list[tuple[str, datetime, str]] = []

    def connections(self) -> list[str]:
        """The PBX connections of the configuration, in its order."""
        return [c.name for c in self.settings.pbx_connections]

    async def load(self) -> None:
        """Read the stored overlays, pins and exclusions and put them in effect (at start)."""
        await self.refresh(sync=False)

    async def follow(self, interval: float = FOLLOW_INTERVAL) -> None:
        """Take up what another m365pbx process on the same database saved, until cancelled."""
        while True:
            await self.clock.sleep(interval)
            await self.refresh(sync=True)

    async def refresh(self, *, sync: bool) -> None:
        """Put the stored overlays, pins and exclusions in effect where they changed."""
        async with self.store.transaction() as tx:
            stored = await tx.mapping_overlays.list_all()
            overrides = await tx.matching_overrides.list_for()
        seen = [(r.connection, r.updated_at, r.updated_by) for r in stored]
        if seen != self._overlays_seen:
            self._overlays_seen = seen
            self._use_overlays(stored)
            if sync:
                self.mapping_changed()
        self._use_overrides(overrides, sync=sync)

    def _use_overlays(self, stored: list[MappingOverlayRow]) -> None:
        self.overlays = {}
        for row in stored:
            draft = read_draft(draft_text(row.document))
            if draft.overlay is None:
                # Checked when saved; a newer m365pbx may read rules differently.
                log.error("the admin UI's mapping overlay of PBX connection %s is not used: %s",
                          row.connection, "; ".join(draft.problems))
                continue
            self.overlays[row.connection] = draft.overlay

    def compiled(self, connection: str, overlay: MappingOverlay | None = None, *,
                 draft: bool = False) -> CompiledMapping:
        """The mapping in effect for `connection`; with `draft`, with `overlay` instead of
        the saved one (the preview before saving)."""
        chosen = overlay if draft else self.overlays.get(connection)
        return CompiledMapping(rules_of(self.settings, connection, chosen))

    async def save_overlay(self, connection: str, draft: Draft, *, actor: str) -> None:
        """Store the admin's overlay (empty: remove it), audit it, and put it in effect."""
        if connection not in self.connections():
            raise LookupError(f"there is no PBX connection {connection!r}")
        if draft.problems or (draft.overlay is None and not draft.empty):
            raise MappingError(list(draft.problems), source=UI_SOURCE)
        now = self.clock.now()

        async def work(tx: Repositories) -> None:
            if draft.empty:
                removed = await tx.mapping_overlays.remove(connection)
                if removed:
                    await tx.audit.append(at=now, actor=actor, action="mapping.remove",
                                          object_type="pbx_connection", object_id=connection)
                return
            await tx.mapping_overlays.put(connection, draft.document or {}, now=now, by=actor)
            await tx.audit.append(at=now, actor=actor, action="mapping.edit",
                                  object_type="pbx_connection", object_id=connection,
                                  details={"overlay": draft.document or {}})

        await self.store.write(work, what=f"the mapping overlay of {connection}")
        await self.refresh(sync=False)  # as stored; `follow` then sees nothing new
        self.forget_policies()
        # What each person's PBX shows is decided again under the new rules.
        people = [p for p in self.hub.people() if p.connection == connection]
        for person in people:
            self.hub.poke(person.id)
        log.info("%s changed the mapping overlay of PBX connection %s (%d people looked at "
                 "again)", actor, connection, len(people))

    def mapping_changed(self) -> None:
        """The configuration's mappings changed: decide everyone's PBX presence again."""
        self.forget_policies()
        for person in self.hub.people():
            self.hub.poke(person.id)

    async def overrides(self, connection: str | None = None) -> list[MatchingOverrideRow]:
        """The stored pins and exclusions (of one connection, or all)."""
        async with self.store.transaction() as tx:
            return await tx.matching_overrides.list_for(connection)

    async def set_override(self, connection: str, key: str, *, teams_user: str | None,
                           actor: str) -> None:
        """Pin PBX user `key` to `teams_user`, or (None) exclude user `key`; then match again."""
        if connection not in self.connections():
            raise LookupError(f"there is no PBX connection {connection!r}")
        key, teams_user = key.strip(), None if teams_user is None else teams_user.strip()
        if not key or len(key) > 255 or teams_user == "" or len(teams_user or "") > 255:
            raise ValueError("name a user (at most 255 characters)")
        kind = EXCLUDE if teams_user is None else PIN
        now = self.clock.now()

        async def work(tx: Repositories) -> None:
            await tx.matching_overrides.put(connection, key, kind=kind, teams_user=teams_user,
                                            now=now, by=actor)
            details = {"key": key} | ({} if teams_user is None else {"teams_user": teams_user})
            await tx.audit.append(at=now, actor=actor, action=f"matching.{kind}",
                                  object_type="pbx_connection", object_id=connection,
                                  details=details)

        await self.store.write(work, what=f"a {kind} of {key} on {connection}")
        await self._reload_overrides()
        log.info("%s set a %s of %s on PBX connection %s", actor, kind, key, connection)

    async def remove_override(self, connection: str, key: str, *, actor: str) -> bool:
        """Drop the pin or exclusion of `key`; then match again. Whether there was one."""
        now = self.clock.now()

        async def work(tx: Repositories) -> bool:
            row = await tx.matching_overrides.remove(connection, key)
            if row is not None:
                await tx.audit.append(at=now, actor=actor, action=f"matching.{row.kind}_removed",
                                      object_type="pbx_connection", object_id=connection,
                                      details={"key": key})
            return row is not None

        removed = await self.store.write(work, what=f"the pin or exclusion of {key}")
        if removed:
            await self._reload_overrides()
        return removed

    async def _reload_overrides(self) -> None:
        async with self.store.transaction() as tx:
            overrides = await tx.matching_overrides.list_for()
        self._use_overrides(overrides, sync=True)

    def _use_overrides(self, rows: list[MatchingOverrideRow], *, sync: bool) -> None:
        for runtime in self.tenants.values():
            changed = False
            for directory in runtime.parts.directory.connections:
                mine = [r for r in rows if r.connection == directory.name]
                pins = {r.key: r.teams_user for r in mine if r.kind == PIN and r.teams_user}
                exclude = frozenset(r.key for r in mine if r.kind == EXCLUDE)
                if (pins, exclude) != (dict(directory.options.pins), directory.options.exclude):
                    directory.options = replace(directory.options, pins=pins, exclude=exclude)
                    changed = True
            if changed and sync:
                runtime.sync_now()
