"""Rich notifications: resource data encrypted and signed as Microsoft documents it, and the
validation tokens that prove Graph sent a batch.

`concepts/change-notifications-with-resource-data.md`: a random symmetric key per
notification; `data` is the resource JSON under AES-CBC with PKCS7 padding and the first 16
bytes of the key as IV; `dataSignature` is HMAC-SHA256 over the encrypted bytes with the
same key; `dataKey` is the key under RSA-OAEP with the subscriber's certificate (the
documented decryptors use OAEP with SHA-1: .NET `Decrypt(fOAEP: true)`, Java
`OAEPWithSHA1AndMGF1Padding`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding

from m365sim.errors import GraphError
from m365sim.tokens import TokenIssuer, b64url

# The app id of Graph's change notification publisher; receivers must check `appid`
# against it (concepts/change-notifications-with-resource-data.md, "How to validate").
CHANGE_TRACKING_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
# Chosen: the lifetime of the documentation's example token (iat to exp: 29,100 s).
VALIDATION_TOKEN_LIFETIME_S = 29_100
# A cached token is signed anew when less than this is left.
_RESIGN_MARGIN_S = 300
_OAEP = OAEP(mgf=MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)  # noqa: S303


@dataclass(frozen=True)
class EncryptionCertificate:
    """The subscriber's public encryption key and the certificate's SHA-1 thumbprint."""

    public_key: rsa.RSAPublicKey
    thumbprint: str

    @classmethod
    def parse(cls, text: str) -> EncryptionCertificate:
        """A base64 DER (or PEM) certificate with an RSA key of 2,048-4,096 bits, or 400."""
        stripped = text.strip()
        try:
            if stripped.startswith("-----BEGIN"):
                cert = x509.load_pem_x509_certificate(stripped.encode("ascii"))
            else:
                cert = x509.load_der_x509_certificate(base64.b64decode(stripped, validate=True))
        except (ValueError, binascii.Error, UnicodeEncodeError):
            # Observed Graph wording for a value that is not a certificate.
            raise GraphError(400, "InvalidRequest", "Certificate validation error: Cannot find "
                             "the requested object.") from None
        key = cert.public_key()
        # The docs: "The key must be of type RSA" and "between 2,048 bits and 4,096 bits".
        if not isinstance(key, rsa.RSAPublicKey) or not 2048 <= key.key_size <= 4096:
            raise GraphError(400, "InvalidRequest", "Certificate validation error: the key "
                             "must be RSA with 2,048 to 4,096 bits.")
        der = cert.public_bytes(Encoding.DER)
        thumbprint = hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - documented SHA-1
        return cls(key, thumbprint)


def encrypt_content(resource: dict[str, Any], certificate: EncryptionCertificate,
                    certificate_id: str) -> dict[str, str]:
    """The `encryptedContent` of one notification for `resource`."""
    key = os.urandom(32)
    padder = padding.PKCS7(128).padder()
    plain = json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    data = encryptor.update(padded) + encryptor.finalize()
    signature = hmac.new(key, data, hashlib.sha256).digest()
    return {
        "data": base64.b64encode(data).decode("ascii"),
        "dataSignature": base64.b64encode(signature).decode("ascii"),
        "dataKey": base64.b64encode(certificate.public_key.encrypt(key, _OAEP)).decode("ascii"),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": certificate.thumbprint,
    }


class ValidationTokens:
    """Signs (and caches) one validation token per app and tenant."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        # (app, tenant) -> (expiry, token, kid of the key that signed it)
        self._cache: dict[tuple[str, str], tuple[int, str, str]] = {}

    def token(self, app_id: str, tenant_id: str, now: datetime) -> str:
        """A JWT like Entra issues for Graph's publisher app, audience the subscribing app."""
        issued = int(now.timestamp())
        cached = self._cache.get((app_id, tenant_id))
        if cached is not None and cached[0] - _RESIGN_MARGIN_S > issued >= cached[0] - (
                VALIDATION_TOKEN_LIFETIME_S) and cached[2] == self.issuer.key.kid:
            return cached[1]
        authority = f"https://sts.windows.net/{tenant_id}/"
        expires = issued + VALIDATION_TOKEN_LIFETIME_S
        token = self.issuer.sign({
            "aud": app_id,
            "iss": authority,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "aio": b64url(os.urandom(24)),
            "appid": CHANGE_TRACKING_APP_ID,
            "azp": CHANGE_TRACKING_APP_ID,
            "appidacr": "2",
            "idp": authority,
            "tid": tenant_id,
            "uti": b64url(uuid.uuid4().bytes),
            "ver": "1.0",
        })
        self._cache[(app_id, tenant_id)] = (expires, token, self.issuer.key.kid)
        return token
