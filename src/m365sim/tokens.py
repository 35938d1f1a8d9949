"""Signing keys and JWTs: the access tokens Entra issues and Graph checks.

Microsoft signs with RS256 keys published at `/{tenant}/discovery/v2.0/keys`; the
simulator makes one key pair at start (or loads one) and publishes it the same way.
Microsoft rotates its keys: `rotate()` signs with a new key from then on; the earlier
ones stay published and accepted until retired, as Entra keeps them for a while.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GRAPH_AUDIENCE = "https://graph.microsoft.com"


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE uses it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair with its key id (`kid`)."""

    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        """Make a new 2048-bit key with a kid derived from its public key."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(kid=b64url(hashlib.sha1(public).digest()), private_key=key)  # noqa: S324

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWK, in the form Entra's keys document uses."""
        numbers = self.private_key.public_key().public_numbers()
        n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid, "n": b64url(n),
                "e": b64url(e)}

    def public_pem(self) -> bytes:
        """The public key in PEM, for verifying."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class TokenIssuer:
    """Signs and verifies the simulator's JWTs."""

    def __init__(self, key: SigningKey | None = None, *, issuer_base: str) -> None:
        self.key = key or SigningKey.generate()
        self.issuer_base = issuer_base.rstrip("/")
        # Earlier keys, newest first: still published and accepted.
        self.previous: list[SigningKey] = []

    @property
    def published(self) -> list[SigningKey]:
        """The keys the keys document lists: the current one first."""
        return [self.key, *self.previous]

    def rotate(self, *, retire_previous: bool = False) -> SigningKey:
        """Sign with a new key from now on; keep (or retire) the earlier ones."""
        self.previous = [] if retire_previous else [self.key, *self.previous][:4]
        self.key = SigningKey.generate()
        return self.key

    def issuer(self, tenant_id: str) -> str:
        """The `iss` of v2.0 tokens for a tenant."""
        return f"{self.issuer_base}/{tenant_id}/v2.0"

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign arbitrary claims with the current key (RS256, kid in the header)."""
        return jwt.encode(claims, self.key.private_key, algorithm="RS256",
                          headers={"kid": self.key.kid, "x5t": self.key.kid})

    def access_token(
        self,
        *,
        tenant_id: str,
        app_id: str,
        now: datetime,
        lifetime: timedelta,
        user_id: str | None = None,
        upn: str | None = None,
        scopes: list[str] | None = None,
        roles: list[str] | None = None,
        audience: str = GRAPH_AUDIENCE,
    ) -> str:
        """An access token: delegated (user_id + scp) or application (roles)."""
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(lifetime.total_seconds()),
            "tid": tenant_id,
            "appid": app_id,
            "azp": app_id,
            "ver": "1.0",
            "uti": b64url(uuid.uuid4().bytes),
        }
        if user_id is not None:
            claims["oid"] = user_id
            claims["sub"] = user_id
            claims["scp"] = " ".join(scopes or [])
            if upn:
                claims["upn"] = upn
        else:
            claims["oid"] = claims["sub"] = app_id
            claims["roles"] = list(roles or [])
        return self.sign(claims)

    def decode(self, token: str, *, audience: str | None = GRAPH_AUDIENCE) -> dict[str, Any]:
        """Verify the signature (and audience) but not the time: callers check `exp`
        against the simulator's own clock, which may be virtual."""
        options: jwt.types.Options = {
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_aud": audience is not None,
        }
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in self.published if k.kid == kid), self.key)
        claims: dict[str, Any] = jwt.decode(
            token, key.private_key.public_key(), algorithms=["RS256"], audience=audience,
            options=options,
        )
        return claims
