"""Which features a tenant's configuration switches on, and which credential serves each.

The choices mirror the service's wiring (service/tenant.py): the first credential with
presence.read or users.read reads the directory and polls, the first with presence.write
writes presence, service accounts own presence subscriptions when webhooks are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from m365pbx.config import Credential, Settings, Tenant
from m365pbx.config.models import SyncMode
from m365pbx.core.credentials import Permission
from m365pbx.graph.permissions import FEATURE_BY_KEY, FEATURES, FeatureNeed

# The connection switch behind each PBX → Teams feature.
PUSH_SWITCHES = {
    "calls_to_teams": "push_line_state_to_teams",
    "presence_to_teams": "push_pbx_presence_to_teams",
    "note_to_teams": "push_pbx_note_to_teams",
}


def first_with(tenant: Tenant, *permissions: Permission) -> Credential | None:
    """The tenant's first credential declaring any of `permissions` (as the service picks)."""
    return next((c for c in tenant.credentials
                 if any(p in c.permissions for p in permissions)), None)


def uses_webhooks(settings: Settings) -> bool:
    """Whether Teams presence arrives by change notifications (a public URL, not polling)."""
    return settings.webhook_url is not None and settings.teams_to_pbx.mode is not SyncMode.POLLING


@dataclass
class TenantPlan:
    """What one tenant uses: the features per credential, and what cannot be served."""

    # Credential name -> the features it serves (or is declared for).
    by_credential: dict[str, list[FeatureNeed]] = field(default_factory=dict)
    # Features the service accounts' delegated tokens need.
    delegated: list[FeatureNeed] = field(default_factory=list)
    # Features switched on that no credential is declared for: (feature, connections).
    unserved: list[tuple[FeatureNeed, list[str]]] = field(default_factory=list)
    reader: Credential | None = None
    writer: Credential | None = None


def _pushing(settings: Settings, tenant: Tenant, switch: str) -> list[str]:
    names = []
    for connection in settings.pbx_connections:
        if connection.tenant != tenant.name:
            continue
        if getattr(connection, switch) or any(
                getattr(entry, switch) is True for entry in connection.per_person):
            names.append(connection.name)
    return names


def _add(plan: TenantPlan, credential: Credential, need: FeatureNeed) -> None:
    features = plan.by_credential.setdefault(credential.name, [])
    if need not in features:
        features.append(need)


def plan_tenant(settings: Settings, tenant: Tenant) -> TenantPlan:
    """The features the tenant's configuration switches on, by credential."""
    plan = TenantPlan()
    plan.reader = first_with(tenant, Permission.PRESENCE_READ, Permission.USERS_READ)
    plan.writer = first_with(tenant, Permission.PRESENCE_WRITE)
    webhooks = uses_webhooks(settings)
    if plan.reader is not None:
        _add(plan, plan.reader, FEATURE_BY_KEY["directory"])
        if tenant.directory.group_ids:
            _add(plan, plan.reader, FEATURE_BY_KEY["groups"])
        if webhooks and tenant.directory.follow_changes:
            _add(plan, plan.reader, FEATURE_BY_KEY["directory_changes"])
        _add(plan, plan.reader, FEATURE_BY_KEY["polling"])
    if webhooks and tenant.service_accounts:
        plan.delegated.append(FEATURE_BY_KEY["notifications"])
    for key, switch in PUSH_SWITCHES.items():
        connections = _pushing(settings, tenant, switch)
        if not connections:
            continue
        if plan.writer is None:
            plan.unserved.append((FEATURE_BY_KEY[key], connections))
        else:
            _add(plan, plan.writer, FEATURE_BY_KEY[key])
    calendars = [c.name for c in settings.pbx_connections
                 if c.tenant == tenant.name and c.calendar.enabled]
    if calendars:
        reader = first_with(tenant, Permission.CALENDARS_READ)
        if reader is None:
            plan.unserved.append((FEATURE_BY_KEY["calendar"], calendars))
        else:
            _add(plan, reader, FEATURE_BY_KEY["calendar"])
            if any(c.tenant == tenant.name and c.calendar.enabled
                   and c.calendar.automatic_replies for c in settings.pbx_connections):
                _add(plan, reader, FEATURE_BY_KEY["automatic_replies"])
    contacts = [c for c in settings.pbx_connections
                if c.tenant == tenant.name and c.contacts.enabled]
    for key, wanted in (("contacts", contacts),
                        ("org_contacts", [c for c in contacts if c.contacts.organisation])):
        if not wanted:
            continue
        reader = first_with(tenant, Permission.CONTACTS_READ)
        if reader is None:
            plan.unserved.append((FEATURE_BY_KEY[key], [c.name for c in wanted]))
        else:
            _add(plan, reader, FEATURE_BY_KEY[key])
    # A declared permission is planned by, so it must be granted even if nothing uses it now.
    for credential in tenant.credentials:
        for entry in credential.permissions:
            primary = next((need for need in FEATURES
                            if need.entry is entry and need.application), None)
            if primary is not None and not any(
                    need.entry is entry for need in plan.by_credential.get(credential.name, [])):
                _add(plan, credential, primary)
    return plan
