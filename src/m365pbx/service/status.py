"""Where each running part's status comes from: readers of the parts' own facts.

Every part that can fail reports one `PartStatus` (sync/status.py) through these readers:
a tenant's id and sign-in per app credential, each service account and its presence
subscription, the directory sync and its change rounds, presence polling, capacity, each
PBX connection, the Teams writes and the store. /healthz, /readyz, /metrics and the
store's `part_status` table (the CLI's `m365pbx status`) read the registry they fill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from m365pbx.core.credentials import SignInMethod
from m365pbx.pbx.base import PbxConnection
from m365pbx.service.health import STALL_AFTER, iso
from m365pbx.store import Store
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.status import PartState, PartStatus, StatusRegistry, connection_state

if TYPE_CHECKING:
    from m365pbx.service.tenant import TenantRuntime

__all__ = ["connection_statuses", "part_report", "store_status", "teams_writes_status",
           "tenant_statuses", "wire_registry"]

FIX_DIRECTORY = ("Check that the app may read users (User.Read.All, admin consent) and that "
                 "Microsoft answers; the next sync tries again")
FIX_POLLING = ("Check the network or proxy towards Microsoft Graph; m365pbx keeps polling and "
               "catches up when Graph answers")
FIX_SUBSCRIPTION = ("m365pbx retries with backoff; if it persists, check the service "
                    "account's Teams licence and that the public URL answers Graph")
FIX_CONNECTION = "Check the PBX connection's address and credentials in the configuration"
FIX_STORE = ("Check the database: free disk space and file permissions (SQLite) or the "
             "PostgreSQL server")
FIX_CALENDAR = ("Give a credential the calendars.read permission (admin consent) and check "
                "that Microsoft answers; calendars are read again at the next round")
FIX_CONTACT_SUBSCRIPTION = ("m365pbx tries again every five minutes and reads these people's "
                            "contacts every contacts.poll_interval meanwhile; check that the "
                            "public URL answers Graph and that Contacts.Read is granted")
FIX_WRITES = ("Graph does not take Teams writes now; they are held and sent when it answers "
              "again. Check Microsoft's service health if it lasts")


def _status(part: str, kind: str, state: PartState, since: datetime | None,
            error: str | None = None, fix: str | None = None, /,
            **counters: int) -> PartStatus:
    return PartStatus(part, kind, state, since, error, fix if error else None, counters)


def _sign_in_statuses(name: str, runtime: TenantRuntime) -> Iterator[PartStatus]:
    identity = runtime.identity
    if identity.error is not None:
        # A lookup Entra could not answer (network, proxy, 5xx) says nothing of the id.
        state = (PartState.ERROR if identity.duplicate_of is not None or identity.transient
                 else PartState.BAD_CREDENTIALS)
        yield _status(f"tenant/{name}/tenant_id", "tenant_id", state, identity.since,
                      identity.error, identity.fix)
    else:
        yield _status(f"tenant/{name}/tenant_id", "tenant_id",
                      PartState.STARTING if identity.tenant_id is None else PartState.OK,
                      identity.since)
    for index, watch in enumerate(runtime.sign_ins):
        part = f"tenant/{name}/sign_in" + ("" if index == 0 else f"/{index + 1}")
        if watch.signed_in is False and watch.error is not None:
            reason = watch.error.message
            # The message may name the code already (it is Entra's text, explained).
            code = (f" (AADSTS{watch.error.aadsts})" if watch.error.aadsts
                    and f"AADSTS{watch.error.aadsts}" not in reason else "")
            state = (PartState.ERROR if watch.error.retryable or watch.error.status >= 500
                     else PartState.BAD_CREDENTIALS)
            yield _status(part, "sign_in", state, watch.since, f"{watch.label}: {reason}{code}",
                          watch.error.hint or "Check the app's credentials in the configuration")
        else:
            yield _status(part, "sign_in",
                          PartState.OK if watch.signed_in else PartState.STARTING, watch.since)


def _directory_statuses(name: str, runtime: TenantRuntime) -> Iterator[PartStatus]:
    parts = runtime.parts
    directory = parts.directory.status
    state = (PartState.DEGRADED if directory.last_error is not None
             else PartState.STARTING if directory.last_success is None else PartState.OK)
    yield _status(f"tenant/{name}/directory", "directory", state, directory.since,
                  directory.last_error, FIX_DIRECTORY, people=directory.people,
                  teams_users=directory.teams_users)
    if parts.changes is not None:
        changes = parts.changes.status
        yield _status(f"tenant/{name}/directory_changes", "directory_changes",
                      PartState.OK if changes.last_error is None else PartState.DEGRADED,
                      changes.since, changes.last_error, FIX_DIRECTORY, rounds=changes.rounds,
                      applied=changes.applied)
    users = parts.users_subscription
    if users is not None:
        error = users.last_error or users.save_error
        state = (PartState.DEGRADED if error is not None
                 else PartState.STARTING if users.current is None else PartState.OK)
        yield _status(f"tenant/{name}/users_subscription", "subscription", state, users.since,
                      error, FIX_SUBSCRIPTION, notifications=users.notifications,
                      resumed=users.resumed)


def _account_fix(upn: str, method: SignInMethod | None) -> str:
    if method is SignInMethod.PASSWORD:
        return (f"Check the password of {upn} in the configuration; an account that needs "
                f"MFA must sign in with the device code instead (m365pbx signin {upn})")
    return f"Sign the account in again: m365pbx signin {upn}"


def _presence_statuses(name: str, runtime: TenantRuntime) -> Iterator[PartStatus]:
    parts = runtime.parts
    poller = parts.poller
    stalled = poller.stalled_for()
    counters = {"rounds": poller.rounds, "repairs": poller.repairs}
    if stalled >= STALL_AFTER and poller.round_started is not None:
        yield _status(f"tenant/{name}/polling", "polling", PartState.STALLED,
                      poller.round_started,
                      f"Graph has not answered a presence round for {stalled:.0f} s",
                      FIX_POLLING, **counters)
    else:
        yield _status(f"tenant/{name}/polling", "polling",
                      PartState.OK if poller.last_error is None else PartState.DEGRADED,
                      poller.since, poller.last_error, FIX_POLLING, **counters)
    pool = parts.pool
    if pool is None:
        return
    methods = {a.upn: a.sign_in for a in runtime.tenant.service_accounts}
    for upn, owner in pool.owners.items():
        state = connection_state(owner.state.value)
        account_state = (PartState.BAD_CREDENTIALS if state is PartState.BAD_CREDENTIALS
                         else PartState.STARTING if state is PartState.STARTING
                         else PartState.OK)
        yield _status(f"tenant/{name}/service_account/{upn}", "service_account", account_state,
                      owner.since, owner.last_error if account_state is not PartState.OK
                      and owner.last_error else None,
                      _account_fix(upn, methods.get(upn)), people=len(owner.people))
        yield _status(f"tenant/{name}/subscription/{upn}", "subscription", state, owner.since,
                      owner.last_error, FIX_SUBSCRIPTION, people=len(owner.people))
    for account in runtime.tenant.service_accounts:
        if account.upn not in pool.owners:
            yield _status(f"tenant/{name}/service_account/{account.upn}", "service_account",
                          PartState.BAD_CREDENTIALS, None,
                          f"service account {account.upn} has no stored sign-in",
                          f"Sign it in: m365pbx signin {account.upn}")
    shortfall = pool.shortfall()
    yield _status(f"tenant/{name}/capacity", "capacity",
                  PartState.DEGRADED if shortfall.unassigned else PartState.OK,
                  pool.short_since, shortfall.describe() if shortfall.unassigned else None,
                  f"Add {shortfall.accounts_missing} service account(s) "
                  f"({shortfall.per_account} people each)", people=shortfall.people,
                  beyond_capacity=shortfall.unassigned)


def _calendar_statuses(name: str, runtime: TenantRuntime) -> Iterator[PartStatus]:
    calendar = runtime.parts.calendar
    if calendar is None:
        return
    status = calendar.status
    # The reader's words: starting, off (a connection wants calendars but no credential
    # may read them), idle, failing, following.
    state = {"starting": PartState.STARTING, "off": PartState.DEGRADED,
             "failing": PartState.DEGRADED}.get(status.state.split(":")[0], PartState.OK)
    error = status.last_error if state is not PartState.OK else None
    yield _status(f"tenant/{name}/calendar", "calendar", state, status.since, error,
                  FIX_CALENDAR, people=status.people, reads=status.reads,
                  failed_reads=status.failed_reads)
    events = runtime.parts.calendar_subscriptions
    if events is not None:
        health = events.health()
        yield _status(f"tenant/{name}/calendar_subscriptions", "subscription",
                      PartState.OK if health["error"] is None else PartState.DEGRADED, None,
                      health["error"], FIX_SUBSCRIPTION, active=health["active"],
                      missing=health["missing"], notifications=health["notifications"])


def _contact_statuses(name: str, runtime: TenantRuntime) -> Iterator[PartStatus]:
    subscriptions = runtime.parts.contact_subscriptions
    if subscriptions is None:
        return
    health = subscriptions.health()
    yield _status(f"tenant/{name}/contact_subscriptions", "subscription",
                  PartState.OK if health["error"] is None else PartState.DEGRADED, None,
                  health["error"], FIX_CONTACT_SUBSCRIPTION, active=health["active"],
                  missing=health["missing"], notifications=health["notifications"])


def tenant_statuses(tenants: Mapping[str, TenantRuntime],
                    active: Callable[[str], bool] = lambda _name: True) -> list[PartStatus]:
    """Every tenant part's status; those of a tenant another node runs are `disabled` here
    (its lease's part says who holds it): they would read `starting` for ever."""
    found: list[PartStatus] = []
    for name, runtime in tenants.items():
        statuses = [*_sign_in_statuses(name, runtime), *_directory_statuses(name, runtime),
                    *_presence_statuses(name, runtime), *_calendar_statuses(name, runtime),
                    *_contact_statuses(name, runtime)]
        if not active(name):
            statuses = [replace(s, state=PartState.DISABLED, since=None, error=None, fix=None)
                        for s in statuses]
        found += statuses
    return found


def connection_statuses(connections: Mapping[str, PbxConnection],
                        active: Callable[[str], bool] = lambda _name: True) -> list[PartStatus]:
    """Each PBX connection's status, with the input it refused by reason; `disabled` where
    this node does not act on it (several nodes: another holds its tenant)."""
    found = []
    for name, connection in connections.items():
        if not active(name):
            found.append(_status(f"pbx/{name}", "pbx_connection", PartState.DISABLED, None))
            continue
        status = connection.status()
        found.append(_status(f"pbx/{name}", "pbx_connection", connection_state(status.state),
                             status.since, status.last_error, FIX_CONNECTION,
                             **{f"refused_{k}": v for k, v in status.refused.items()}))
    return found


def teams_writes_status(sink: BatchingTeamsSink, now: datetime) -> PartStatus:
    """The Teams writes (PBX → Teams) as one part."""
    status = sink.status()
    since = None if status.since is None else datetime.fromtimestamp(status.since, UTC)
    counters = {"waiting_people": status.waiting, "queued": status.queued,
                **{k: v for k, v in sink.counters.items() if k in ("written", "throttled",
                                                                     "unavailable")}}
    if status.down:
        return _status("teams_writes", "teams_writes", PartState.DEGRADED, since,
                       status.last_error or "Graph is unavailable: Teams writes are held",
                       FIX_WRITES, **counters)
    if status.stalled_since is not None:
        waited = now.timestamp() - status.stalled_since
        return _status("teams_writes", "teams_writes", PartState.STALLED, since,
                       f"Graph has not answered a write for {waited:.0f} s", FIX_WRITES,
                       **counters)
    return _status("teams_writes", "teams_writes", PartState.OK, since, **counters)


def store_status(store: Store) -> PartStatus:
    """The store's writes as one part."""
    writes = store.writes
    failing = writes.last_error is not None
    return _status("store", "store", PartState.ERROR if failing else PartState.OK,
                   writes.since, writes.last_error, FIX_STORE, retried_writes=writes.retried,
                   failed_writes=writes.failed)


def part_report(status: PartStatus) -> dict[str, Any]:
    """One part's status as /healthz shows it."""
    return {"part": status.part, "kind": status.kind, "state": status.state.value,
            "since": iso(status.since), "error": status.error, "fix": status.fix,
            "counters": dict(status.counters)}


def wire_registry(registry: StatusRegistry, *, tenants: Mapping[str, TenantRuntime],
                  connections: Mapping[str, PbxConnection], teams_sink: BatchingTeamsSink,
                  store: Store, active: Callable[[str], bool] = lambda _name: True,
                  connection_active: Callable[[str], bool] = lambda _name: True
                  ) -> StatusRegistry:
    """Register every part of a service with `registry`; returns it. `active` says whether
    this node runs a tenant (several nodes: whether it holds the tenant's lease)."""
    registry.add(lambda: tenant_statuses(tenants, active), name="tenants")
    registry.add(lambda: connection_statuses(connections, connection_active),
                 name="pbx_connections")
    registry.add(lambda: [teams_writes_status(teams_sink, registry.clock.now())],
                 name="teams_writes")
    registry.add(lambda: [store_status(store)], name="store")
    return registry
