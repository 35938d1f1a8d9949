"""The directory the simulator serves: tenants, app registrations, users and groups.

Presence, subscriptions, calendars and contacts live in their own services (see
`simulator.py`); this module holds what Entra ID knows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Graph's Teams service plan (graph.md 2.1): assignedPlans entry with this service name.
TEAMS_SERVICE = "TeamspaceAPI"
TEAMS_PLAN_ID = "57ff2da0-773e-42df-b2af-ffb7a2317929"


def new_id() -> str:
    """A fresh GUID string, as Entra ID and Graph use for object ids."""
    return str(uuid.uuid4())


@dataclass
class ClientSecret:
    """A client secret of an app registration; `value` is what the admin copies once."""

    value: str
    key_id: str = field(default_factory=new_id)
    expires_at: datetime | None = None
    # The time the secret was created: Entra rejects a brand-new secret for a short while
    # with AADSTS7000215 (mapping.md, "Failures users report").
    created_at: datetime | None = None


@dataclass
class AppCertificate:
    """A certificate credential: its DER bytes and SHA-1/SHA-256 thumbprints (base64url)."""

    der: bytes
    x5t: str
    x5t_s256: str
    expires_at: datetime | None = None


@dataclass
class AppRegistration:
    """An app registration with its credentials, consented scopes and granted roles."""

    app_id: str
    display_name: str
    secrets: list[ClientSecret] = field(default_factory=list)
    certificates: list[AppCertificate] = field(default_factory=list)
    # "Allow public client flows": ROPC and device code without a client credential.
    public_client: bool = False
    # Delegated permissions with admin or user consent, e.g. {"Presence.Read.All"}.
    delegated_consent: set[str] = field(default_factory=set)
    # Application permissions granted with admin consent, e.g. {"User.Read.All"}.
    application_roles: set[str] = field(default_factory=set)
    service_principal_id: str = field(default_factory=new_id)


@dataclass
class User:
    """An Entra ID user with every property m365pbx reads or matches on."""

    id: str
    user_principal_name: str
    display_name: str
    password: str | None = None
    mfa_required: bool = False
    mfa_enrollment_required: bool = False
    blocked_by_conditional_access: bool = False
    locked: bool = False
    account_enabled: bool = True
    mail: str | None = None
    mail_nickname: str | None = None
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    office_location: str | None = None
    preferred_language: str | None = None
    business_phones: list[str] = field(default_factory=list)
    mobile_phone: str | None = None
    proxy_addresses: list[str] = field(default_factory=list)
    on_premises_distinguished_name: str | None = None
    on_premises_sam_account_name: str | None = None
    on_premises_user_principal_name: str | None = None
    assigned_plans: list[dict[str, Any]] = field(default_factory=list)
    assigned_licenses: list[dict[str, Any]] = field(default_factory=list)
    member_of: set[str] = field(default_factory=set)
    # Bumped on every change, for /users/delta.
    version: int = 0
    deleted: bool = False


@dataclass
class Group:
    """A security or Microsoft 365 group; members are user ids."""

    id: str
    display_name: str
    members: set[str] = field(default_factory=set)


@dataclass
class Tenant:
    """One Entra ID tenant."""

    id: str
    display_name: str
    domains: list[str]
    apps: dict[str, AppRegistration] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    users_by_upn: dict[str, str] = field(default_factory=dict)
    # Tenant-wide version counter for /users/delta tokens.
    directory_version: int = 0

    @property
    def default_domain(self) -> str:
        """The domain new users get."""
        return self.domains[0]

    def add_user(self, user: User) -> User:
        """Add or replace a user, keeping the UPN index and delta version current."""
        old = self.users.get(user.id)
        if old is not None:
            self.users_by_upn.pop(old.user_principal_name.casefold(), None)
        self.directory_version += 1
        user.version = self.directory_version
        self.users[user.id] = user
        self.users_by_upn[user.user_principal_name.casefold()] = user.id
        return user

    def touch_user(self, user: User) -> None:
        """Record that a user changed (for /users/delta)."""
        self.directory_version += 1
        user.version = self.directory_version

    def find_user(self, id_or_upn: str) -> User | None:
        """A user by object id or userPrincipalName (case-insensitive)."""
        user = self.users.get(id_or_upn)
        if user is None:
            user_id = self.users_by_upn.get(id_or_upn.casefold())
            user = self.users.get(user_id) if user_id else None
        return None if user is None or user.deleted else user


@dataclass
class Directory:
    """All tenants the simulator knows, found by id or by any verified domain."""

    tenants: dict[str, Tenant] = field(default_factory=dict)
    by_domain: dict[str, str] = field(default_factory=dict)

    def add_tenant(self, tenant: Tenant) -> Tenant:
        """Register a tenant under its id and domains."""
        self.tenants[tenant.id] = tenant
        for domain in tenant.domains:
            self.by_domain[domain.casefold()] = tenant.id
        return tenant

    def find_tenant(self, id_or_domain: str) -> Tenant | None:
        """A tenant by GUID or verified domain name."""
        tenant = self.tenants.get(id_or_domain)
        if tenant is None:
            tenant_id = self.by_domain.get(id_or_domain.casefold())
            tenant = self.tenants.get(tenant_id) if tenant_id else None
        return tenant

    def tenant_of_upn(self, upn: str) -> Tenant | None:
        """The tenant whose domain a user principal name belongs to."""
        _, _, domain = upn.rpartition("@")
        return self.find_tenant(domain) if domain else None
