"""What /healthz says of each tenant, and what /readyz decides (issue 18, items 4, 8, 11).

Every part reports a state in words and `since` when it began; an error is the present
state, cleared on recovery, never a leftover. A tenant that cannot sign in, a directory
sync that fails and a Graph that hangs are red lights in the report, not reasons for
/readyz or /healthz to answer 503: m365pbx itself still serves the PBX side, and an
orchestrator must not restart it during Microsoft's outage (design.md rule 5).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from m365pbx.pbx.base import ConnectionState

if TYPE_CHECKING:
    from m365pbx.service.tenant import TenantRuntime

# A presence round Graph has not answered for this long counts as a failure (it hangs).
STALL_AFTER = 60.0


def iso(when: datetime | None) -> str | None:
    """A time for the report: ISO 8601 in UTC, or None."""
    return None if when is None else when.astimezone(UTC).isoformat()


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


def polling_state(runtime: TenantRuntime) -> tuple[str, str | None, datetime]:
    """The poller's state in words, its error, and since when."""
    poller = runtime.parts.poller
    stalled = poller.stalled_for()
    if stalled >= STALL_AFTER and poller.round_started is not None:
        error = f"Graph has not answered a presence round for {stalled:.0f} s"
        return "stalled", error, poller.round_started
    if poller.last_error is not None:
        return "failing", poller.last_error, poller.since
    return "polling", None, poller.since


def tenant_state(runtime: TenantRuntime) -> tuple[str, datetime]:
    """The tenant's one state in words, with since when.

    "signing in failed: <reason, AADSTS code, the fix>", "error: ...", "starting",
    "degraded: <first problem>" or "connected".
    """
    identity = runtime.identity
    if identity.error is not None:
        said = f"{identity.error}. {identity.fix}" if identity.fix else identity.error
        failed = "error" if identity.duplicate_of is not None else "signing in failed"
        return f"{failed}: {said}", identity.since or runtime.clock.now()
    for watch in runtime.sign_ins:
        if (failure := watch.failure()) is not None:
            return failure, watch.since
    parts = runtime.parts
    directory = parts.directory.status
    if directory.last_error is not None:
        return f"degraded: {directory.last_error}", directory.since or runtime.clock.now()
    if directory.last_success is None:
        return "starting", directory.since or runtime.clock.now()
    state, error, since = polling_state(runtime)
    if error is not None:
        return f"degraded: presence polling {state}: {error}", since
    sinces: list[datetime | None] = [directory.since, since]
    if parts.pool is not None:
        for upn, owner in parts.pool.owners.items():
            if owner.state is not ConnectionState.CONNECTED and owner.last_error is not None:
                return (f"degraded: presence subscription of {upn}: {owner.last_error}",
                        owner.since)
            sinces.append(owner.since)
        shortfall = parts.pool.shortfall()
        if shortfall.unassigned:
            return (f"degraded: {shortfall.describe()}",
                    parts.pool.short_since or runtime.clock.now())
    calendar = parts.calendar
    if calendar is not None and calendar.status.last_error is not None:
        return (f"degraded: calendar {calendar.status.state}: {calendar.status.last_error}",
                calendar.status.since or runtime.clock.now())
    return "connected", _latest(*sinces) or runtime.clock.now()


def tenant_report(runtime: TenantRuntime) -> dict[str, Any]:
    """One tenant's part of /healthz: its state, and each part's state with since."""
    parts = runtime.parts
    state, since = tenant_state(runtime)
    directory = parts.directory.status
    poll_state, poll_error, poll_since = polling_state(runtime)
    report: dict[str, Any] = {
        "state": state,
        "since": iso(since),
        "directory": {"people": directory.people, "error": directory.last_error,
                      "since": iso(directory.since),
                      "last_success": iso(directory.last_success)},
        "polling": {"state": poll_state, "rounds": parts.poller.rounds, "error": poll_error,
                    "since": iso(poll_since)},
        "subscriptions": {} if parts.pool is None else {
            upn: {"state": o.state.value, "error": o.last_error, "since": iso(o.since)}
            for upn, o in parts.pool.owners.items()
        },
        "calendar": None if parts.calendar is None else parts.calendar.health() | {
            "subscriptions": None if parts.calendar_subscriptions is None
            else parts.calendar_subscriptions.health()},
    }
    if parts.pool is not None:
        shortfall = parts.pool.shortfall()
        report["capacity"] = {
            "people": shortfall.people, "service_accounts": shortfall.accounts,
            "per_account": shortfall.per_account, "beyond_capacity": shortfall.unassigned,
            "accounts_missing": shortfall.accounts_missing,
            "error": shortfall.describe() if shortfall.unassigned else None,
            "since": iso(parts.pool.short_since),
        }
    return report
