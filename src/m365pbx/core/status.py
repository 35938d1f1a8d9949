"""The one vocabulary of visible state: a part's state, since when, the error and the fix.

Plain values, shared by sync/ (which reports them), service/ (which gathers them) and
store/ (which keeps them for `m365pbx status` and a second node); see sync/status.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["WORST_FIRST", "PartState", "PartStatus", "connection_state", "summary"]


class PartState(StrEnum):
    """The one vocabulary of a part's state, worst last (see `WORST_FIRST`)."""

    OK = "ok"
    STARTING = "starting"
    DISABLED = "disabled"
    DEGRADED = "degraded"
    STALLED = "stalled"
    STOPPED = "stopped"
    BAD_CREDENTIALS = "bad_credentials"
    ERROR = "error"

    @property
    def is_ok(self) -> bool:
        """Whether an admin need not act: working, on its way up, or switched off."""
        return self in (PartState.OK, PartState.STARTING, PartState.DISABLED)


# For a summary: the worst state first.
WORST_FIRST = (PartState.ERROR, PartState.BAD_CREDENTIALS, PartState.STOPPED, PartState.STALLED,
               PartState.DEGRADED, PartState.STARTING, PartState.DISABLED, PartState.OK)


@dataclass(frozen=True, slots=True)
class PartStatus:
    """One part's visible state: what, since when, what is wrong in words and how to fix it.

    `part` names it uniquely ("tenant/contoso/subscription/svc@contoso.com"); `kind` groups
    it ("subscription"). `error` is the present problem, None once it works again; `fix`
    says what an admin can do about it. `written_at` is set when read from the store.
    """

    part: str
    kind: str
    state: PartState
    since: datetime | None = None
    error: str | None = None
    fix: str | None = None
    counters: Mapping[str, int] = field(default_factory=dict)
    node: str = ""
    written_at: datetime | None = None

    def same_state(self, other: PartStatus) -> bool:
        """Whether `other` says the same (state, error, fix) whatever the counters."""
        return (self.state, self.error, self.fix) == (other.state, other.error, other.fix)


def summary(statuses: Iterable[PartStatus]) -> PartState:
    """The worst state among `statuses` (OK when there are none)."""
    states = {s.state for s in statuses}
    return next((state for state in WORST_FIRST if state in states), PartState.OK)


def connection_state(value: str) -> PartState:
    """Map a PBX connection's or subscription owner's state to the one vocabulary."""
    return {"starting": PartState.STARTING, "connected": PartState.OK,
            "degraded": PartState.DEGRADED, "bad_credentials": PartState.BAD_CREDENTIALS,
            "error": PartState.ERROR, "stopped": PartState.STOPPED}.get(value, PartState.ERROR)
