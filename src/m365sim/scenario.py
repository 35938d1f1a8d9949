"""Scenario files: the tenants, apps, users and their data a simulator starts with.

A scenario is YAML (or the same structure as a dict from the control API)::

    tenants:
      - name: Contoso
        id: 7b1f0e8e-...            # optional; generated when absent
        domains: [contoso.com]
        apps:
          - app_id: 0c8f...
            name: m365pbx
            secrets: [{value: "s3cr3t", expires: "2027-06-30T00:00:00Z"}]
            certificates: [{pem: "-----BEGIN CERTIFICATE-----..."}]
            public_client: true
            delegated: [Presence.Read.All, User.Read.All, offline_access]
            application: [User.Read.All, Presence.ReadWrite.All]
        groups: [{name: Sales}]
        users:
          - upn: anna@contoso.com
            display_name: Anna Schmidt
            password: "correct horse"
            teams: true             # an enabled Teams service plan
            groups: [Sales]
            presence: {availability: Available, activity: Available}
            calendar: [...]         # see m365sim.outlook
            contacts: [...]
        generate: {users: 500, seed: 1}
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from m365sim.model import (
    TEAMS_PLAN_ID,
    TEAMS_SERVICE,
    AppCertificate,
    AppRegistration,
    ClientSecret,
    Group,
    Tenant,
    User,
    new_id,
)

if TYPE_CHECKING:
    from m365sim.simulator import Simulator


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the path of the bad value."""


def teams_plan(enabled: bool = True) -> dict[str, Any]:
    """An assignedPlans entry for Teams (graph.md 2.1)."""
    return {
        "assignedDateTime": "2024-01-01T00:00:00Z",
        "capabilityStatus": "Enabled" if enabled else "Suspended",
        "service": TEAMS_SERVICE,
        "servicePlanId": TEAMS_PLAN_ID,
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def certificate_from_pem(pem: bytes) -> AppCertificate:
    """An app certificate credential from a PEM certificate."""
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    return AppCertificate(
        der=der,
        x5t=_b64url(hashlib.sha1(der).digest()),  # noqa: S324 - x5t is defined as SHA-1
        x5t_s256=_b64url(hashlib.sha256(der).digest()),
        expires_at=cert.not_valid_after_utc,
    )


def _when(value: object, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError(f"{path}: {value!r} is not an ISO-8601 date and time") from None


def _app(data: Mapping[str, Any], path: str) -> AppRegistration:
    app = AppRegistration(
        app_id=str(data.get("app_id") or new_id()),
        display_name=str(data.get("name", "app")),
        public_client=bool(data.get("public_client", False)),
        delegated_consent=set(data.get("delegated", [])),
        application_roles=set(data.get("application", [])),
    )
    for index, secret in enumerate(data.get("secrets", [])):
        app.secrets.append(
            ClientSecret(
                value=str(secret["value"]),
                expires_at=_when(secret.get("expires"), f"{path}.secrets[{index}].expires"),
                created_at=_when(secret.get("created"), f"{path}.secrets[{index}].created"),
            )
        )
    for index, cert in enumerate(data.get("certificates", [])):
        pem = cert.get("pem")
        if pem is None and cert.get("pem_file"):
            pem = Path(cert["pem_file"]).read_text()
        if not pem:
            raise ScenarioError(f"{path}.certificates[{index}]: give 'pem' or 'pem_file'")
        app.certificates.append(certificate_from_pem(str(pem).encode()))
    return app


def _user(tenant: Tenant, data: Mapping[str, Any], groups: dict[str, Group]) -> User:
    upn = str(data["upn"])
    user = User(
        id=str(data.get("id") or new_id()),
        user_principal_name=upn,
        display_name=str(data.get("display_name", upn.split("@")[0])),
        password=data.get("password"),
        mfa_required=bool(data.get("mfa", False)),
        mfa_enrollment_required=bool(data.get("mfa_enrollment_required", False)),
        blocked_by_conditional_access=bool(data.get("conditional_access_blocked", False)),
        locked=bool(data.get("locked", False)),
        account_enabled=bool(data.get("enabled", True)),
        mail=data.get("mail", upn),
        mail_nickname=data.get("mail_nickname", upn.split("@")[0]),
        given_name=data.get("given_name"),
        surname=data.get("surname"),
        job_title=data.get("job_title"),
        office_location=data.get("office_location"),
        business_phones=list(data.get("business_phones", [])),
        mobile_phone=data.get("mobile_phone"),
        proxy_addresses=list(data.get("proxy_addresses", [f"SMTP:{data.get('mail', upn)}"])),
        on_premises_distinguished_name=data.get("on_premises_distinguished_name"),
        on_premises_sam_account_name=data.get("on_premises_sam_account_name"),
        on_premises_user_principal_name=data.get("on_premises_user_principal_name"),
        assigned_plans=[teams_plan()] if data.get("teams", True) else [],
    )
    for name in data.get("groups", []):
        group = groups.get(str(name))
        if group is None:
            raise ScenarioError(f"user {upn}: unknown group {name!r}")
        user.member_of.add(group.id)
        group.members.add(user.id)
    return tenant.add_user(user)


def load_scenario(sim: Simulator, data: Mapping[str, Any]) -> list[Tenant]:
    """Add the scenario's tenants to `sim`; raise ScenarioError naming a bad value."""
    from m365sim.directory.generate import generate_users

    if not isinstance(data, Mapping) or not isinstance(data.get("tenants"), list):
        raise ScenarioError("a scenario is a mapping with a list under 'tenants'")
    try:  # `limits: {bucket: {requests, window_s}}` (see m365sim.faults)
        sim.faults.load_limits(data.get("limits"))
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    loaded = []
    for t_index, t_data in enumerate(data["tenants"]):
        path = f"tenants[{t_index}]"
        try:
            domains = [str(d) for d in t_data.get("domains") or []]
            if not domains:
                raise ScenarioError(f"{path}.domains: at least one domain is needed")
            tenant = Tenant(id=str(t_data.get("id") or new_id()),
                            display_name=str(t_data.get("name", domains[0])), domains=domains)
            for a_index, a_data in enumerate(t_data.get("apps", [])):
                app = _app(a_data, f"{path}.apps[{a_index}]")
                tenant.apps[app.app_id] = app
            groups: dict[str, Group] = {}
            for g_data in t_data.get("groups", []):
                group_id = str(g_data.get("id") or new_id())
                group = Group(id=group_id, display_name=str(g_data["name"]))
                groups[group.display_name] = group
                tenant.groups[group.id] = group
            sim.directory.add_tenant(tenant)
            for u_data in t_data.get("users", []):
                user = _user(tenant, u_data, groups)
                sim.presence.load_user(tenant, user, u_data.get("presence", "signed-in"))
                sim.outlook.load_user(tenant, user, u_data.get("calendar"), u_data.get("contacts"))
            if t_data.get("generate"):
                generate_users(sim, tenant, **dict(t_data["generate"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ScenarioError(f"{path}: malformed entry ({exc})") from None
        loaded.append(tenant)
    return loaded


def load_scenario_file(sim: Simulator, path: Path) -> list[Tenant]:
    """Load a YAML scenario file into `sim`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: invalid YAML: {exc}") from None
    return load_scenario(sim, data)
