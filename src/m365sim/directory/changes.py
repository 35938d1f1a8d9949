"""Changing the directory: create, update and delete users, as an admin would in Entra.

Every change bumps the tenant's delta version (model.py), is written to the directory
part's change log (for `/users/delta` with `Prefer: return=minimal`) and is published on
the change bus as `users/{id}` for the subscriptions part. Bodies use Graph's property
names (`displayName`, `accountEnabled`, ...) plus a few simulator-only keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from m365sim.directory.state import directory_state
from m365sim.directory.user_spec import DEFAULT_SELECT, USER_SPEC
from m365sim.errors import GraphError
from m365sim.events import ResourceChange
from m365sim.model import User, new_id
from m365sim.scenario import teams_plan

if TYPE_CHECKING:
    from m365sim.model import Tenant
    from m365sim.simulator import Simulator

# Graph property -> (User attribute, expected JSON type).
WRITABLE: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "displayName": ("display_name", str),
    "givenName": ("given_name", (str, type(None))),
    "surname": ("surname", (str, type(None))),
    "userPrincipalName": ("user_principal_name", str),
    "mail": ("mail", (str, type(None))),
    "mailNickname": ("mail_nickname", (str, type(None))),
    "jobTitle": ("job_title", (str, type(None))),
    "officeLocation": ("office_location", (str, type(None))),
    "preferredLanguage": ("preferred_language", (str, type(None))),
    "businessPhones": ("business_phones", list),
    "mobilePhone": ("mobile_phone", (str, type(None))),
    "accountEnabled": ("account_enabled", bool),
    "proxyAddresses": ("proxy_addresses", list),
    "onPremisesDistinguishedName": ("on_premises_distinguished_name", (str, type(None))),
    "onPremisesSamAccountName": ("on_premises_sam_account_name", (str, type(None))),
    "onPremisesUserPrincipalName": ("on_premises_user_principal_name", (str, type(None))),
    "assignedPlans": ("assigned_plans", list),
    "assignedLicenses": ("assigned_licenses", list),
}
# Simulator-only keys: sign-in behaviour and the Teams licence shortcut.
SIM_ONLY: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "password": ("password", (str, type(None))),
    "mfa": ("mfa_required", bool),
    "mfaEnrollmentRequired": ("mfa_enrollment_required", bool),
    "blockedByConditionalAccess": ("blocked_by_conditional_access", bool),
    "locked": ("locked", bool),
}


def _apply(tenant: Tenant, user: User, body: Mapping[str, Any]) -> frozenset[str]:
    """Check and apply a body; the Graph properties it changed."""
    changed: set[str] = set()
    for key, value in body.items():
        if key == "teams":
            if not isinstance(value, bool):
                raise GraphError(400, "BadRequest", "Property 'teams' must be a boolean.")
            user.assigned_plans = [p for p in user.assigned_plans
                                   if p.get("servicePlanId") != teams_plan()["servicePlanId"]]
            if value:
                user.assigned_plans.append(teams_plan())
            changed.add("assignedPlans")
            continue
        target = WRITABLE.get(key) or SIM_ONLY.get(key)
        if target is None:
            raise GraphError(400, "BadRequest", f"Property '{key}' does not exist or cannot be "
                                                f"written on type 'microsoft.graph.user'.")
        attribute, kind = target
        if not isinstance(value, kind):
            raise GraphError(400, "BadRequest", f"Invalid value for property '{key}'.")
        if key == "userPrincipalName":
            _check_upn(tenant, user, str(value))
        setattr(user, attribute, list(value) if isinstance(value, list) else value)
        if key in WRITABLE:
            changed.add(key)
    return frozenset(changed)


def _check_upn(tenant: Tenant, user: User, upn: str) -> None:
    local, at, domain = upn.partition("@")
    if not local or not at or domain.casefold() not in {d.casefold() for d in tenant.domains}:
        raise GraphError(400, "Request_BadRequest",
                         "The domain portion of the userPrincipalName property is invalid. You "
                         "must use one of the verified domain names in your organization.")
    other = tenant.users_by_upn.get(upn.casefold())
    if other is not None and other != user.id and not tenant.users[other].deleted:
        raise GraphError(400, "Request_BadRequest", "Another object with the same value for "
                                                    "property userPrincipalName already exists.")


def _publish(sim: Simulator, tenant: Tenant, user: User, change_type: str) -> None:
    data = {"@odata.type": "#microsoft.graph.user", "@odata.id": f"Users/{user.id}",
            **USER_SPEC.to_json(user, (*DEFAULT_SELECT, "accountEnabled"))}
    sim.bus.publish(ResourceChange(
        tenant_id=tenant.id, resource=f"users/{user.id}", change_type=change_type,
        resource_id=user.id, odata_type="#microsoft.graph.user", odata_id=f"Users/{user.id}",
        resource_data=data))


def create_user(sim: Simulator, tenant: Tenant, body: Mapping[str, Any]) -> User:
    """Add a user from a Graph-style body (needs `userPrincipalName`); publishes it."""
    upn = body.get("userPrincipalName")
    if not isinstance(upn, str):
        raise GraphError(400, "Request_BadRequest", "Property 'userPrincipalName' is required "
                                                    "when creating the object.")
    user = User(id=str(body.get("id") or new_id()), user_principal_name=upn,
                display_name=upn.split("@")[0], mail=upn, mail_nickname=upn.split("@")[0],
                proxy_addresses=[f"SMTP:{upn}"], assigned_plans=[teams_plan()])
    if user.id in tenant.users:
        raise GraphError(400, "Request_BadRequest", "Another object with the same value for "
                                                    "property id already exists.")
    _apply(tenant, user, {k: v for k, v in body.items() if k != "id"})
    tenant.add_user(user)
    directory_state(sim).record(tenant, user, None)
    sim.presence.load_user(tenant, user, "signed-in")
    sim.outlook.load_user(tenant, user, None, None)
    # Directory subscriptions report a new user as "updated" (graph.md 4.1: users support
    # updated and deleted only).
    _publish(sim, tenant, user, "updated")
    return user


def update_user(sim: Simulator, tenant: Tenant, user: User, body: Mapping[str, Any]) -> User:
    """Change a user's properties from a Graph-style body; publishes the change."""
    old_upn = user.user_principal_name
    snapshot = {name: getattr(user, attr) for name, (attr, _) in WRITABLE.items()}
    try:
        changed = _apply(tenant, user, body)
    except GraphError:
        for name, (attr, _) in WRITABLE.items():
            setattr(user, attr, snapshot[name])
        raise
    if user.user_principal_name != old_upn:
        tenant.users_by_upn.pop(old_upn.casefold(), None)
        tenant.users_by_upn[user.user_principal_name.casefold()] = user.id
    tenant.touch_user(user)
    directory_state(sim).record(tenant, user, changed)
    _publish(sim, tenant, user, "updated")
    return user


def delete_user(sim: Simulator, tenant: Tenant, user: User, *, permanent: bool = False) -> None:
    """Delete a user (soft by default: restorable, delta reason `changed`); publishes it."""
    user.deleted = True
    tenant.touch_user(user)
    directory_state(sim).record(tenant, user, None, "deleted" if permanent else "changed")
    for group in tenant.groups.values():
        group.members.discard(user.id)
    _publish(sim, tenant, user, "deleted")
