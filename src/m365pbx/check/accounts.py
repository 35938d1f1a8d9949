"""Service accounts: each signs in (MFA needs device code), holds the delegated permissions
notifications need (`scp`), has a Teams licence; together they cover the matched people."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import httpx

from m365pbx.check.consent import sign_in_code
from m365pbx.check.context import CheckContext
from m365pbx.check.features import TenantPlan
from m365pbx.check.findings import Finding, fail, ok, warn
from m365pbx.config import ServiceAccount, Tenant
from m365pbx.core.credentials import SignInMethod
from m365pbx.core.matching import has_teams_plan
from m365pbx.graph.auth import ClientCredential, ServiceAccountTokenSource, TokenSource
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.graph.errors import M365Error, MfaRequired
from m365pbx.graph.permissions import (
    NOT_IN_SCP,
    admin_consent_url,
    delegated_scopes,
    missing,
    token_claims,
)

AREA = "service account"


@dataclass
class AccountResult:
    """How one service account came out: usable for subscriptions or not."""

    upn: str
    usable: bool


def graph_client(ctx: CheckContext, tokens: TokenSource, http: httpx.AsyncClient) -> GraphClient:
    """A Graph client that tries once: a check reports, it does not wait out outages."""
    return GraphClient(tokens, http, base_url=ctx.graph_url, clock=ctx.clock,
                       retry=RetryPolicy(attempts=1))


def _token_source(ctx: CheckContext, tenant: Tenant,
                  account: ServiceAccount) -> ServiceAccountTokenSource | Finding:
    credential = tenant.credential(account.credential)
    client = ClientCredential(str(credential.client_id))  # a public client, as the service
    subject = f"{AREA} {account.upn}"
    if account.sign_in is SignInMethod.PASSWORD and account.password is not None:
        return ServiceAccountTokenSource(ctx.authority(tenant), client, account.upn,
                                         password=account.password.get_secret_value())
    refresh_token = ctx.refresh_tokens.get(account.upn.casefold())
    if refresh_token is None:
        where = f" ({ctx.store_problem})" if ctx.store_problem else ""
        return fail(AREA, subject, f"the account has not signed in with a device code yet{where}",
                    f"Run 'm365pbx signin {account.upn}' and sign in as the account in a "
                    "browser (MFA works there).")
    return ServiceAccountTokenSource(ctx.authority(tenant), client, account.upn,
                                     refresh_token=refresh_token)


def _mfa_finding(account: ServiceAccount, exc: MfaRequired) -> Finding:
    return fail(AREA, f"{AREA} {account.upn}",
                f"a password alone cannot sign the account in: {exc.message}. Microsoft asks "
                "for multi-factor authentication, which only a person in a browser can give",
                exc.hint, sign_in_code(exc))


async def _licence(ctx: CheckContext, account: ServiceAccount,
                   reader: GraphClient | None) -> Finding:
    subject = f"{AREA} {account.upn}"
    if reader is None:
        return warn(AREA, subject, "the Teams licence was not checked: the app could not sign "
                    "in to read it", "Fix the app's sign-in first (see above).")
    try:
        user = await reader.get_json(f"/v1.0/users/{quote(account.upn)}",
                                     params={"$select": "id,accountEnabled,assignedPlans"})
    except M365Error as exc:
        return warn(AREA, subject, f"the Teams licence could not be read: {exc.message}",
                    exc.hint or "Grant the app User.Read.All with admin consent.")
    plans = user.get("assignedPlans")
    if isinstance(plans, list) and has_teams_plan(plans):
        return ok(AREA, subject, "has an enabled Teams licence")
    return fail(AREA, subject, "has no enabled Teams licence: Graph refuses presence "
                "subscriptions for it", "Assign the account a licence that includes Microsoft "
                "Teams (in the Microsoft 365 admin center), or declare another account.")


async def check_account(ctx: CheckContext, tenant: Tenant, account: ServiceAccount,
                        plan: TenantPlan, reader: GraphClient | None
                        ) -> tuple[list[Finding], AccountResult]:
    """One account: its sign-in, its delegated permissions, its Teams licence."""
    subject = f"{AREA} {account.upn}"
    source = _token_source(ctx, tenant, account)
    if isinstance(source, Finding):
        return [source, await _licence(ctx, account, reader)], AccountResult(account.upn, False)
    try:
        token = await source.token()
    except MfaRequired as exc:
        findings = [_mfa_finding(account, exc), await _licence(ctx, account, reader)]
        return findings, AccountResult(account.upn, False)
    except M365Error as exc:
        findings = [fail(AREA, subject, f"cannot sign in: {exc.message}",
                         exc.hint or "See the message.", sign_in_code(exc)),
                    await _licence(ctx, account, reader)]
        return findings, AccountResult(account.upn, False)
    how = "with its password" if account.sign_in is SignInMethod.PASSWORD else (
        "with its stored device-code sign-in")
    findings = [ok(AREA, subject, f"signs in {how}")]
    usable = True
    scopes = delegated_scopes(token_claims(token))
    credential = tenant.credential(account.credential)
    for need in plan.delegated:
        wanted = [name for name in need.delegated if name not in NOT_IN_SCP]
        absent = missing(scopes, wanted)
        if absent:
            usable = False
            url = admin_consent_url(ctx.login_url, str(tenant.tenant_id),
                                    str(credential.client_id))
            findings.append(fail(
                AREA, subject, f"its token lacks the delegated permission "
                f"{', '.join(absent)}, needed for {need.feature.replace('`', '')}",
                f"Add the delegated permission {', '.join(absent)} to the app registration "
                f"(client id {credential.client_id}) and grant admin consent: {url}"))
        elif wanted:
            findings.append(ok(AREA, subject, f"{', '.join(wanted)} is granted (delegated)"))
    licence = await _licence(ctx, account, reader)
    findings.append(licence)
    return findings, AccountResult(account.upn, usable and licence.status.value != "fail")
