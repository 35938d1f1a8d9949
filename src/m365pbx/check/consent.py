"""Each credential of a tenant: it signs in, has consent, and holds every permission the
enabled features need (read from the `roles` claim of its application token)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from m365pbx.check.context import CheckContext
from m365pbx.check.features import TenantPlan
from m365pbx.check.findings import Finding, fail, ok, warn
from m365pbx.config import Credential, Tenant
from m365pbx.graph.auth import AppTokenSource, ClientCredential
from m365pbx.graph.errors import ConsentMissing, M365Error, SignInError
from m365pbx.graph.permissions import (
    INCLUDES,
    FeatureNeed,
    admin_consent_url,
    application_roles,
    missing,
    token_claims,
)

AREA = "permissions"


def app_credential(credential: Credential) -> ClientCredential:
    """The Graph layer's form of a configured credential (secret or certificate)."""
    if credential.client_secret is not None:
        return ClientCredential(str(credential.client_id),
                                secret=credential.client_secret.get_secret_value())
    assert credential.certificate_file is not None
    pem = credential.certificate_file.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    password = credential.certificate_password
    return ClientCredential(
        str(credential.client_id), private_key_pem=pem.decode(),
        thumbprint_hex=hashlib.sha1(der).hexdigest(),  # noqa: S324 - Entra's x5t thumbprint
        passphrase=None if password is None else password.get_secret_value())


def sign_in_code(exc: M365Error) -> str:
    """AADSTS12345 for a sign-in error with a number, else the error code."""
    if isinstance(exc, SignInError) and exc.aadsts:
        return f"AADSTS{exc.aadsts}"
    return exc.code


def consent_fix(ctx: CheckContext, tenant: Tenant, credential: Credential, what: str) -> str:
    """How to add and consent `what` for the credential's app registration."""
    url = admin_consent_url(ctx.login_url, str(tenant.tenant_id), str(credential.client_id))
    return (f"In the Entra admin center add {what} to the app registration (API permissions "
            f"→ Microsoft Graph), then grant admin consent there or open {url}")


@dataclass
class CredentialResult:
    """A credential that signed in: its token source, for the checks that read Graph."""

    tokens: AppTokenSource
    roles: list[str] = field(default_factory=list)


def _needs(features: list[FeatureNeed]) -> dict[str, list[FeatureNeed]]:
    needed: dict[str, list[FeatureNeed]] = {}
    for need in features:
        for name in need.application:
            needed.setdefault(name, []).append(need)
    return needed


async def check_credential(ctx: CheckContext, tenant: Tenant, credential: Credential,
                           features: list[FeatureNeed]
                           ) -> tuple[list[Finding], CredentialResult | None]:
    """Sign the credential in and compare its token's roles with what `features` need."""
    subject = f"tenant {tenant.name}, credential {credential.name}"
    try:
        tokens = AppTokenSource(ctx.authority(tenant), app_credential(credential))
        token = await tokens.token()
    except ConsentMissing as exc:
        return [fail(AREA, subject, exc.message,
                     consent_fix(ctx, tenant, credential, "the permissions listed in "
                                 "docs/permissions.md"), sign_in_code(exc))], None
    except M365Error as exc:
        return [fail(AREA, subject, f"the app (client id {credential.client_id}) cannot sign "
                     f"in: {exc.message}", exc.hint or "See the message.",
                     sign_in_code(exc))], None
    except (OSError, ValueError) as exc:  # an unreadable certificate file
        return [fail(AREA, subject, f"the credential cannot be used: {exc}",
                     "Check certificate_file and certificate_password.")], None
    findings = [ok(AREA, subject, f"the app (client id {credential.client_id}) signs in")]
    claims = token_claims(token)
    if not claims:
        findings.append(warn(AREA, subject, "the access token cannot be read, so its "
                             "permissions were not compared", "Nothing to fix here; if "
                             "features fail later, compare docs/permissions.md by hand."))
        return findings, CredentialResult(tokens)
    roles = application_roles(claims)
    needed = _needs(features)
    if not roles and needed:
        findings.append(fail(AREA, subject, "the app has no application permission with "
                             "admin consent at all",
                             consent_fix(ctx, tenant, credential,
                                         ", ".join(sorted(needed)))))
        return findings, CredentialResult(tokens, roles)
    for name, needs in needed.items():
        uses = "; ".join(need.feature.replace("`", "") for need in needs)
        if missing(roles, [name]):
            findings.append(fail(
                AREA, subject, f"the app lacks the application permission {name}, needed "
                f"for: {uses}", consent_fix(ctx, tenant, credential,
                                             f"the application permission {name}")))
        else:
            broader = next((role for role in roles
                            if name in INCLUDES.get(role, frozenset())), None)
            exact = any(role.casefold() == name.casefold() for role in roles)
            through = f" (as part of {broader})" if broader and not exact else ""
            findings.append(ok(AREA, subject, f"{name} is granted{through} ({uses})"))
    return findings, CredentialResult(tokens, roles)


async def check_consent(ctx: CheckContext, tenant: Tenant, plan: TenantPlan
                        ) -> tuple[list[Finding], dict[str, CredentialResult]]:
    """Every credential of the tenant, and the features no credential is declared for."""
    findings: list[Finding] = []
    signed_in: dict[str, CredentialResult] = {}
    if plan.reader is None:
        findings.append(fail(AREA, f"tenant {tenant.name}", "no credential declares "
                             "presence.read or users.read: the directory cannot be read and "
                             "the tenant does not start",
                             "Add users.read and presence.read to a credential's permissions "
                             "(and grant User.Read.All and Presence.Read.All)."))
    for need, connections in plan.unserved:
        if need.key == "calendar":
            findings.append(warn(
                AREA, f"tenant {tenant.name}", f"{need.feature} is switched on for "
                f"{', '.join(connections)} but no credential declares calendars.read: no "
                "calendar is read",
                "Add calendars.read to a credential's permissions and grant it "
                "Calendars.Read, or switch calendar.enabled off."))
            continue
        findings.append(warn(
            AREA, f"tenant {tenant.name}", f"{need.feature} is switched on for "
            f"{', '.join(connections)} but no credential declares presence.write: nothing "
            "is written to Teams",
            "Add presence.write to a credential's permissions and grant it "
            "Presence.ReadWrite.All, or switch the push_*_to_teams options off."))
    for credential in tenant.credentials:
        found, result = await check_credential(
            ctx, tenant, credential, plan.by_credential.get(credential.name, []))
        findings += found
        if result is not None:
            signed_in[credential.name] = result
    return findings, signed_in
