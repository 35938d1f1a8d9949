"""Whether a user may sign in: password, account state, Conditional Access and MFA.

The order of the checks is ours (docs/simulator/entra.md): the password is checked before
anything that would tell a stranger about the account, then the account state, then the
policies that apply once the user is known (Conditional Access, MFA), then consent.
"""

from __future__ import annotations

import hmac

from m365sim.entra.scopes import GRAPH_APP_ID
from m365sim.errors import AadError
from m365sim.model import Tenant, User


def find_user(tenant: Tenant, username: str) -> User:
    """The user signing in; AADSTS50034 when the tenant has no such account."""
    user = tenant.find_user(username)
    if user is None:
        raise AadError("invalid_grant", 50034, username)
    return user


def check_password(user: User, password: str) -> None:
    """Compare the password as an opaque string (graph.md 1.1c; mapping.md: any character)."""
    if user.locked:
        # Smart lockout refuses even the right password (AADSTS50053).
        raise AadError("invalid_grant", 50053)
    if user.password is None or not hmac.compare_digest(
            user.password.encode("utf-8"), password.encode("utf-8")):
        raise AadError("invalid_grant", 50126)


def check_account(user: User) -> None:
    """A known user whose account cannot sign in: disabled (50057)."""
    if not user.account_enabled or user.deleted:
        raise AadError("invalid_grant", 50057)


def check_policies(user: User, *, interactive: bool) -> None:
    """Conditional Access and MFA; an interactive sign-in (device code) satisfies MFA."""
    if user.blocked_by_conditional_access:
        raise AadError("invalid_grant", 53003, suberror="message_only")
    if interactive:
        return
    # ROPC cannot answer an MFA challenge (v2-oauth-ropc.md); Entra names the resource.
    if user.mfa_enrollment_required:
        raise AadError("invalid_grant", 50079, GRAPH_APP_ID, suberror="basic_action")
    if user.mfa_required:
        raise AadError("invalid_grant", 50076, GRAPH_APP_ID, suberror="basic_action")
