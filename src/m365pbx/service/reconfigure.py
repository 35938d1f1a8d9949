"""Applying the configuration file while m365pbx runs (the admin UI's button, SIGHUP).

What can change in place does so at once: a credential's secret or certificate (the
tenant signs in again with it: a red light turns green without a restart) and the
tenants' and PBX connections' `mapping`. Every other difference is named as waiting for
a restart, shown as the configuration file's light. The store gets the file's declared
objects and the audit trail `configuration.applied` with both lists (names, never values).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from m365pbx.clock import Clock
from m365pbx.config import Settings, load_config
from m365pbx.core.status import PartState, PartStatus
from m365pbx.declarations import declarations_from_settings
from m365pbx.errors import UserInputError
from m365pbx.graph.auth import AppTokenSource
from m365pbx.logs import mask_more_secrets, settings_secrets
from m365pbx.service.tenant import client_credential
from m365pbx.store import Repositories
from m365pbx.sync.signin import WatchedTokens

if TYPE_CHECKING:
    from m365pbx.app import Service

log = logging.getLogger(__name__)

_SECRET = re.compile(r"^tenants\[([^\]]+)\]\.credentials\[([^\]]+)\]\."
                     r"(client_secret|certificate_file|certificate_password)$")
_MAPPING = re.compile(r"^(tenants|pbx_connections)\[[^\]]+\]\.mapping([.\[].*)?$")
_KEYS = ("name", "upn")  # how the items of a list of objects are told apart
_NAMES = 50  # at most this many changes per list in one audit event


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where two dumped configurations differ, as paths (named items by name); no values."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            inner = f"{path}.{key}" if path else str(key)
            if key not in old or key not in new:
                found.append(inner)
            else:
                found += differences(old[key], new[key], inner)
        return found
    if isinstance(old, list) and isinstance(new, list) and _named(old) and _named(new):
        old_by, new_by = _by_name(old), _by_name(new)
        found = []
        for name in sorted(set(old_by) | set(new_by)):
            inner = f"{path}[{name}]"
            if name not in old_by or name not in new_by:
                found.append(inner)
            else:
                found += differences(old_by[name], new_by[name], inner)
        return found
    return [] if old == new else [path]


def applies_at_once(path: str, *, same_connections: bool = True) -> bool:
    """Whether a difference at `path` takes effect without a restart (a credential's secret
    or certificate; a mapping, while the PBX connections stay the same)."""
    return bool(_SECRET.match(path)) or (same_connections and bool(_MAPPING.match(path)))


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and any(k in i for k in _KEYS)
                               for i in items)


def _by_name(items: list[Any]) -> dict[str, Any]:
    return {str(next(i[k] for k in _KEYS if k in i)): i for i in items}


@dataclass(frozen=True)
class Applied:
    """One application of the configuration file: what took effect, what waits, or why not."""

    at: datetime
    actor: str
    in_effect: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def unchanged(self) -> bool:
        """Whether the file said nothing new."""
        return self.error is None and not self.in_effect and not self.needs_restart


class Reconfigurer:
    """Reads the configuration file again and applies what it can without a restart."""

    def __init__(self, service: Service, clock: Clock,
                 environ: Mapping[str, str] | None = None) -> None:
        self.service = service
        self.clock = clock
        self.environ = environ
        self.settings: Settings = service.settings  # the file as last applied
        self.last: Applied | None = None
        self._lock = asyncio.Lock()

    def status(self) -> list[PartStatus]:
        """The configuration file's light: only while something waits or failed."""
        last = self.last
        if last is None or (last.error is None and not last.needs_restart):
            return []
        if last.error is not None:
            return [PartStatus("configuration", "configuration", PartState.ERROR, last.at,
                               f"the configuration file was not applied: {last.error}",
                               "Fix the file (m365pbx config check), then apply it again")]
        return [PartStatus("configuration", "configuration", PartState.DEGRADED, last.at,
                           "changed, in effect after a restart: "
                           + ", ".join(last.needs_restart[:10]),
                           "Restart m365pbx (e.g. systemctl restart m365pbx)")]

    async def apply(self, actor: str) -> Applied:
        """Read the file again and apply it; one application at a time."""
        async with self._lock:
            self.last = await self._apply(actor)
        last = self.last
        if last.error is not None:
            log.warning("%s: the configuration file was not applied: %s", actor, last.error)
        elif not last.unchanged:
            log.info("%s applied the configuration file: in effect now: %s; after a restart: "
                     "%s", actor, ", ".join(last.in_effect) or "nothing",
                     ", ".join(last.needs_restart) or "nothing")
        return last

    async def _apply(self, actor: str) -> Applied:
        now = self.clock.now()
        source = self.settings.source_file
        if source is None:
            return Applied(now, actor, error="m365pbx was started without a configuration "
                                             "file (the demo): there is none to apply")
        try:
            new = await asyncio.to_thread(load_config, source, environ=self.environ)
        except UserInputError as exc:
            return Applied(now, actor, error=exc.describe())
        mask_more_secrets(settings_secrets(new))
        changed = differences(self.settings.model_dump(), new.model_dump())
        same_parts = ([c.name for c in new.pbx_connections]
                      == [c.name for c in self.settings.pbx_connections])
        live = [p for p in changed if applies_at_once(p, same_connections=same_parts)]
        waiting = [p for p in changed if p not in live]
        try:
            swaps = self._new_sign_ins(new, live)
        except (OSError, ValueError, UserInputError) as exc:
            return Applied(now, actor, error=f"a credential cannot be used: {exc}")

        async def work(tx: Repositories) -> None:
            report = await tx.sync_declared(declarations_from_settings(new))
            if not changed and not report.changed:
                return
            details: dict[str, Any] = {"in_effect": live[:_NAMES],
                                       "needs_restart": waiting[:_NAMES]}
            details |= {name: values[:_NAMES] for name, values in (
                ("created", report.created), ("updated", report.updated),
                ("adopted", report.adopted), ("removed", report.removed)) if values}
            await tx.audit.append(at=now, actor=actor, action="configuration.applied",
                                  object_type="configuration",
                                  object_id=None if source is None else str(source),
                                  details=details)

        try:
            await self.service.store.write(work, what="the configuration file's objects")
        except Exception as exc:  # the store said no: nothing is changed in place either
            return Applied(now, actor, error=f"the store refused it: {exc}")
        for watched, new_source, _ in swaps:
            watched.source = new_source
        for tenant in {runtime_name for _, _, runtime_name in swaps}:
            runtime = self.service.tenants.get(tenant)
            if runtime is not None:
                # Every part that signs in tries again at once with the new secret.
                runtime.sync_now()
                runtime.parts.poller.poll_soon()
                if runtime.parts.changes is not None:
                    runtime.parts.changes.wake()
        if any(_MAPPING.match(p) for p in live):
            self.service.edits.settings = new
            self.service.edits.mapping_changed()
        self.settings = new
        return Applied(now, actor, live, waiting)

    def _new_sign_ins(self, new: Settings, live: list[str]
                      ) -> list[tuple[WatchedTokens, AppTokenSource, str]]:
        """The sign-ins to give a new secret, built before anything changes."""
        swaps = []
        seen = set()
        for path in live:
            match = _SECRET.match(path)
            if match is None or match.groups()[:2] in seen:
                continue
            tenant_name, credential_name = match.groups()[:2]
            seen.add((tenant_name, credential_name))
            runtime = self.service.tenants.get(tenant_name)
            tenant = next((t for t in new.tenants if t.name == tenant_name), None)
            credential = None if tenant is None else next(
                (c for c in tenant.credentials if c.name == credential_name), None)
            if runtime is None or credential is None:
                continue  # a new tenant or credential: after a restart
            watched = runtime.sign_in_of.get(credential_name)
            if watched is None:
                continue  # a credential no app sign-in uses (service accounts read it anew)
            swaps.append((watched, AppTokenSource(runtime.authority,
                                                  client_credential(credential)), tenant_name))
        return swaps
