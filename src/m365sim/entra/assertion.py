"""Certificate client assertions (certificate-credentials.md): a JWT the app signs itself.

Checked like Entra: the header names a registered certificate by `x5t` (SHA-1) or
`x5t#S256`; RS256 or PS256 with that certificate's key; `iss` = `sub` = client id;
`aud` = our token endpoint; `exp`/`nbf` on the simulator's clock; a `jti`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509

from m365sim.entra.assertion_ledger import AssertionLedger
from m365sim.errors import AadError
from m365sim.model import AppCertificate, AppRegistration

ALGORITHMS = ("RS256", "PS256")


@dataclass(frozen=True)
class AssertionPolicy:
    """What an assertion is checked against besides the app's certificates."""

    audiences: Collection[str]
    now: datetime
    skew: timedelta
    ledger: AssertionLedger
    strict_jti: bool


def _fail(code: int, detail: str) -> AadError:
    return AadError("invalid_client", code, detail, status=401)


def _header(assertion: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _fail(50027, "The client assertion is not a JWT.") from None
    if header.get("alg") not in ALGORITHMS:
        raise _fail(50027, f"The signing algorithm '{header.get('alg')}' is not supported.")
    return header


def _thumbprint(value: object) -> bytes | None:
    """A thumbprint header's bytes: base64url per RFC 7515, but MSAL keeps the padding."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _certificate(app: AppRegistration, header: dict[str, Any]) -> AppCertificate:
    s256, sha1 = _thumbprint(header.get("x5t#S256")), _thumbprint(header.get("x5t"))
    for cert in app.certificates:
        if (s256 and _thumbprint(cert.x5t_s256) == s256) or (
                sha1 and _thumbprint(cert.x5t) == sha1):
            return cert
    raise _fail(700027, "The certificate with identifier used to sign the client assertion "
                f"is not registered on application. [Reason - The key was not found., "
                f"Thumbprint of key used by client: "
                f"'{(s256 or sha1 or b'').hex().upper()}']")


def _verified_claims(assertion: str, cert: AppCertificate, alg: str) -> dict[str, Any]:
    public_key = x509.load_der_x509_certificate(cert.der).public_key()
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion, public_key, algorithms=[alg],  # type: ignore[arg-type]
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "verify_aud": False, "verify_iss": False})
    except jwt.InvalidSignatureError:
        raise _fail(700027, "Client assertion contains an invalid signature. [Reason - The "
                    "provided signature value did not match the expected signature value., "
                    f"Thumbprint of key used by client: '{cert.x5t}']") from None
    except jwt.PyJWTError as exc:
        raise _fail(50027, f"The client assertion could not be read ({exc}).") from None
    return claims


def _timestamp(claims: dict[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(50027, f"The '{name}' claim is not a number.")
    return datetime.fromtimestamp(float(value), tz=UTC)


def verify_client_assertion(app: AppRegistration, assertion: str,
                            policy: AssertionPolicy) -> None:
    """Raise the AadError Entra gives unless `assertion` proves the app's identity."""
    header = _header(assertion)
    cert = _certificate(app, header)
    if cert.expires_at is not None and cert.expires_at <= policy.now:
        raise _fail(700027, "Client assertion contains an invalid signature. [Reason - The key "
                    f"used is expired., Thumbprint of key used by client: '{cert.x5t}']")
    claims = _verified_claims(assertion, cert, str(header["alg"]))
    if claims.get("sub") != claims.get("iss"):
        raise _fail(50048, "")
    if str(claims.get("iss", "")).lower() != app.app_id.lower():
        raise _fail(50013, "The 'iss' and 'sub' claims must be the application's client id.")
    audiences = claims.get("aud")
    audience_list = audiences if isinstance(audiences, list) else [audiences]
    wanted = {a.lower() for a in policy.audiences}
    if not any(isinstance(a, str) and a.lower() in wanted for a in audience_list):
        raise _fail(50013, f"The audience '{audiences}' is not this token endpoint.")
    expires = _timestamp(claims, "exp")
    not_before = _timestamp(claims, "nbf")
    if expires is None:
        raise _fail(50013, "The 'exp' claim is missing.")
    if policy.now >= expires + policy.skew or (
            not_before is not None and policy.now + policy.skew < not_before):
        valid_from = not_before or _timestamp(claims, "iat")
        raise _fail(700024, f"Current time: {policy.now.isoformat()}, assertion valid from "
                    f"{valid_from.isoformat() if valid_from else 'unknown'}, expiry time of "
                    f"assertion {expires.isoformat()}.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _fail(50013, "The 'jti' claim is missing.")
    if not policy.ledger.record(jti, assertion, expires + policy.skew, policy.now,
                                strict=policy.strict_jti):
        raise _fail(50013, f"The assertion id (jti) '{jti}' was already used.")
