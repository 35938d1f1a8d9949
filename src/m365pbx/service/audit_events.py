"""Audit events the running service writes itself (the admin UI and the CLI write theirs)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from m365pbx.store import Repositories, SyncReport

# At most this many object names per list in one event: a big directory stays readable.
_NAMES = 50


async def configuration_applied(tx: Repositories, report: SyncReport, *, now: datetime,
                                source: Path | None, actor: str = "m365pbx serve") -> None:
    """Record that the configuration file's declarations changed the store (never secrets:
    only which objects were created, updated, adopted or removed)."""
    if not report.changed:
        return
    details = {name: values[:_NAMES] for name, values in (
        ("created", report.created), ("updated", report.updated),
        ("adopted", report.adopted), ("removed", report.removed)) if values}
    await tx.audit.append(at=now, actor=actor, action="configuration.applied",
                          object_type="configuration",
                          object_id=None if source is None else str(source), details=details)
