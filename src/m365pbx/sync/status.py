"""One model of visible state: every part that can fail reports one `PartStatus` (rule 5).

A part is a tenant's sign-in, a service account, a subscription, a directory sync, a PBX
connection, the Teams writes, the store, ... Each has one state from `PartState`, since
when, the last error in words, the fix, and its counters. A `StatusRegistry` gathers them
from the running parts (each part keeps its own facts; the registry only reads them), and
/healthz, /readyz, /metrics and the store read the registry. `StatusRecorder` hands the
changes to a `StatusSink` (the store, in service/) so that `m365pbx status` and a second
node see them; sync/ knows the port only, never the store (design.md "Layout").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.core.status import (
    WORST_FIRST,
    PartState,
    PartStatus,
    connection_state,
    summary,
)

__all__ = ["WORST_FIRST", "PartState", "PartStatus", "StatusRecorder", "StatusRegistry",
           "StatusSink", "StatusSource", "connection_state", "summary"]

log = logging.getLogger(__name__)


StatusSource = Callable[[], Iterable[PartStatus]]


class StatusSink(Protocol):
    """Where recorded statuses go (the store, in service/status_store.py)."""

    async def save(self, statuses: Sequence[PartStatus], *, gone: Sequence[str]) -> None:
        """Write these statuses (replacing older ones of the same part); forget `gone`."""
        ...


class StatusRegistry:
    """Every part's status, read from the parts at the moment it is asked for.

    Sources are functions that read a part's own facts; a source that has no `since`
    gets the moment the registry first saw the part in its present state.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._sources: list[tuple[str, StatusSource]] = []
        self._seen: dict[str, PartStatus] = {}
        self._broken: set[str] = set()  # sources whose failure is logged already

    def add(self, source: StatusSource, *, name: str | None = None) -> None:
        """Read `source` from now on; `name` names it if reading it fails."""
        self._sources.append((name or str(getattr(source, "__name__", "source")), source))

    def snapshot(self) -> list[PartStatus]:
        """Every part's status now, in a stable order (by part name)."""
        now = self.clock.now()
        found: dict[str, PartStatus] = {}
        for name, source in self._sources:
            try:
                statuses = list(source())
            except Exception as exc:  # a broken reader must not hide the others
                if name not in self._broken:  # once, not at every scrape
                    log.exception("reading the status of %s failed", name)
                    self._broken.add(name)
                statuses = [PartStatus(f"status/{name}", "status", PartState.ERROR, None,
                                       f"reading the status of {name} failed: {exc!r}",
                                       "Report this as a bug of m365pbx")]
            else:
                self._broken.discard(name)
            for status in statuses:
                previous = self._seen.get(status.part)
                if status.since is None:
                    keep = previous is not None and previous.state is status.state
                    status = replace(status, since=previous.since if keep and previous
                                     else now)
                found[status.part] = status
        self._seen = found
        return [found[name] for name in sorted(found)]

    def get(self, part: str) -> PartStatus | None:
        """One part's status now, or None if no part has that name."""
        return next((s for s in self.snapshot() if s.part == part), None)

    def not_ok(self) -> list[PartStatus]:
        """The parts an admin must look at."""
        return [s for s in self.snapshot() if not s.state.is_ok]


class StatusRecorder:
    """Writes the registry's statuses to a sink: on a change (at most every `every` seconds)
    and all of them every `refresh` seconds, so a reader can tell a stale record."""

    def __init__(self, registry: StatusRegistry, sink: StatusSink, clock: Clock, *,
                 node: str = "", every: float = 2.0, refresh: float = 60.0) -> None:
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.node = node
        self.every = every
        self.refresh = refresh
        self.written: dict[str, PartStatus] = {}
        self._written_at: datetime | None = None
        self.failures = 0
        self.last_error: str | None = None

    def _due(self, now: datetime) -> bool:
        return self._written_at is None or (
            (now - self._written_at).total_seconds() >= self.refresh)

    async def record(self) -> int:
        """Write what changed since the last write (everything when a refresh is due)."""
        now = self.clock.now()
        current = {s.part: replace(s, node=self.node) for s in self.registry.snapshot()}
        everything = self._due(now)
        changed = [s for part, s in current.items() if everything or part not in self.written
                   or not s.same_state(self.written[part])]
        gone = [part for part in self.written if part not in current]
        if not changed and not gone:
            return 0
        await self.sink.save(changed, gone=gone)
        self.written = current if everything else {
            **{p: s for p, s in self.written.items() if p in current},
            **{s.part: s for s in changed}}
        if everything:
            self._written_at = now
        return len(changed) + len(gone)

    async def run(self) -> None:
        """Record every `every` seconds until cancelled; after failed writes, back off
        (doubling, up to `refresh`) so a database outage is not hammered nor logged at
        every round (the store's own part shows it)."""
        in_a_row = 0
        while True:
            try:
                await self.record()
            except Exception as exc:  # a failure of the store, shown by its part; keep trying
                self.failures += 1
                in_a_row += 1
                if self.last_error is None:
                    log.warning("the parts' states could not be saved: %s", exc)
                self.last_error = str(exc)
            else:
                if self.last_error is not None:
                    log.info("the parts' states are saved again")
                self.last_error = None
                in_a_row = 0
            await self.clock.sleep(min(self.every * 2 ** min(in_a_row, 16), self.refresh))
