"""The jobs between the two sides: directory sync and matching, presence both ways (the hub,
Teams → PBX polling and notifications, PBX → Teams writes) and the parts' visible states.
The only layer that turns protocol errors into states (design.md rule 2); it never imports
the store (ports such as `status.StatusSink` are implemented in service/)."""

from __future__ import annotations

import importlib
from typing import Any

# The submodules other packages may import from directly (tests/test_public_names.py);
# "name.*": every module of that subpackage.
PUBLIC_MODULES = (
    "balance",
    "calendar",
    "calendar.*",
    "contacts",
    "directory",
    "directory_delta",
    "hub",
    "intake",
    "leases",
    "mailbox_records",
    "pbx_to_teams",
    "pbx_to_teams.restore",
    "pbx_to_teams.snapshot",
    "people",
    "signin",
    "sinks",
    "status",
    "supervise",
    "teams_to_pbx.coverage",
    "teams_to_pbx.owner",
    "teams_to_pbx.poller",
    "teams_to_pbx.pool",
    "teams_to_pbx.readback",
    "teams_to_pbx.readings",
    "teams_to_pbx.receiver",
    "teams_to_pbx.records",
    "users_subscription",
)

# Each public name and the submodule that defines it; imported on first use, so that
# importing one submodule does not load the others (the CLI starts light).
_HOME = {
    "AccountOwner": "teams_to_pbx.owner",
    "BatchingTeamsSink": "pbx_to_teams",
    "CONFIRM_WITHIN": "pbx_to_teams.restore",
    "CalendarPlan": "calendar",
    "CalendarReader": "calendar",
    "ConnectionDirectory": "directory",
    "ConnectionsSink": "sinks",
    "DirectoryChanges": "directory_delta",
    "DirectorySync": "directory",
    "Endpoints": "teams_to_pbx.owner",
    "KeeperState": "leases",
    "KnownSubscription": "teams_to_pbx.receiver",
    "LeaseKeeper": "leases",
    "LeasePort": "leases",
    "MailboxRecord": "mailbox_records",
    "MailboxRecords": "mailbox_records",
    "NotificationCoverage": "teams_to_pbx.coverage",
    "NotificationIntake": "intake",
    "NotificationReceiver": "teams_to_pbx.receiver",
    "ORPHAN_GRACE": "pbx_to_teams.restore",
    "PartState": "status",
    "PartStatus": "status",
    "Person": "people",
    "PollPlan": "teams_to_pbx.poller",
    "PresenceHub": "hub",
    "PresencePoller": "teams_to_pbx.poller",
    "ReadBack": "teams_to_pbx.readback",
    "ReadingConverter": "teams_to_pbx.readings",
    "RestartGuard": "pbx_to_teams.restore",
    "SavedPerson": "pbx_to_teams.restore",
    "Snapshot": "pbx_to_teams.snapshot",
    "StatusRecorder": "status",
    "StatusRegistry": "status",
    "StoredPerson": "directory",
    "SubscriptionPool": "teams_to_pbx.pool",
    "SubscriptionRecord": "teams_to_pbx.records",
    "TeamsSink": "hub",
    "UsersSubscription": "users_subscription",
    "Verdict": "teams_to_pbx.receiver",
    "WatchedTokens": "signin",
    "connection_state": "status",
    "pbx_values": "pbx_to_teams.snapshot",
    "snapshot_from_values": "pbx_to_teams.snapshot",
    "snapshot_of": "pbx_to_teams.snapshot",
    "supervised": "supervise",
    "teams_seen_values": "pbx_to_teams.snapshot",
    "teams_user_properties": "directory",
    "teams_written_values": "pbx_to_teams.snapshot",
}

__all__ = [
    "CONFIRM_WITHIN",
    "ORPHAN_GRACE",
    "AccountOwner",
    "BatchingTeamsSink",
    "CalendarPlan",
    "CalendarReader",
    "ConnectionDirectory",
    "ConnectionsSink",
    "DirectoryChanges",
    "DirectorySync",
    "Endpoints",
    "KeeperState",
    "KnownSubscription",
    "LeaseKeeper",
    "LeasePort",
    "MailboxRecord",
    "MailboxRecords",
    "NotificationCoverage",
    "NotificationIntake",
    "NotificationReceiver",
    "PartState",
    "PartStatus",
    "Person",
    "PollPlan",
    "PresenceHub",
    "PresencePoller",
    "ReadBack",
    "ReadingConverter",
    "RestartGuard",
    "SavedPerson",
    "Snapshot",
    "StatusRecorder",
    "StatusRegistry",
    "StoredPerson",
    "SubscriptionPool",
    "SubscriptionRecord",
    "TeamsSink",
    "UsersSubscription",
    "Verdict",
    "WatchedTokens",
    "connection_state",
    "pbx_values",
    "snapshot_from_values",
    "snapshot_of",
    "supervised",
    "teams_seen_values",
    "teams_user_properties",
    "teams_written_values",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its submodule on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names."""
    return sorted(__all__)
