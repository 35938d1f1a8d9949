"""The keys document (`/{tenant}/discovery/v2.0/keys`) with an `x5c` for each key.

Entra publishes every signing key with a self-signed certificate; some validators read
`x5c` instead of `n`/`e`, so the simulator wraps its key in a certificate too.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from m365sim.tokens import SigningKey

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

_CERTIFICATES: dict[str, str] = {}


def key_certificate(key: SigningKey) -> str:
    """Base64 DER of a self-signed certificate for the signing key (made once per key)."""
    cached = _CERTIFICATES.get(key.kid)
    if cached is not None:
        return cached
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.m365sim.invalid")])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=3650 * 3))
        .sign(key.private_key, hashes.SHA256())
    )
    encoded = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
    if len(_CERTIFICATES) >= 64:  # one key per simulator; test runs make many
        _CERTIFICATES.clear()
    _CERTIFICATES[key.kid] = encoded
    return encoded


def jwks(sim: Simulator, issuer_tenant: str) -> dict[str, Any]:
    """The keys document: the simulator's public signing keys as Entra publishes its keys."""
    entries = []
    for key in sim.issuer.published:
        entry = dict(key.jwk())
        entry["x5c"] = [key_certificate(key)]
        entry["issuer"] = f"{sim.base_url}/{issuer_tenant}/v2.0"
        entries.append(entry)
    return {"keys": entries}
