"""The certificate Graph encrypts rich notifications for: made by us, rotated before expiry."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class NotificationCertificate:
    """A key pair and self-signed certificate; `id` is what subscriptions call it."""

    id: str
    certificate_der: bytes
    private_key_pem: bytes = field(repr=False)
    not_after: datetime

    @classmethod
    def generate(cls, *, now: datetime, lifetime: timedelta = timedelta(days=90),
                 name: str = "m365pbx notifications") -> NotificationCertificate:
        """Make a fresh 2048-bit RSA key and a certificate valid from `now` for `lifetime`."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .sign(key, hashes.SHA256())
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        return cls(f"m365pbx-{now:%Y%m%d%H%M%S}", der, pem, now + lifetime)

    @property
    def base64_der(self) -> str:
        """The certificate as `encryptionCertificate` wants it: base64 of the DER bytes."""
        return base64.b64encode(self.certificate_der).decode("ascii")

    @property
    def thumbprint_hex(self) -> str:
        """The SHA-1 thumbprint in hex, as `encryptionCertificateThumbprint` carries it."""
        return hashlib.sha1(self.certificate_der).hexdigest().upper()  # noqa: S324

    def private_key(self) -> rsa.RSAPrivateKey:
        """The private key, to decrypt `dataKey`."""
        return self._parsed_key

    @cached_property
    def _parsed_key(self) -> rsa.RSAPrivateKey:
        # Parsed once: loading a PEM key checks the RSA key (tens of milliseconds), which
        # per notification capped the receiver at about 30 rich notifications a second.
        key = serialization.load_pem_private_key(self.private_key_pem, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def due_for_rotation(self, now: datetime, *, margin: timedelta = timedelta(days=14)) -> bool:
        """Whether a new certificate should take over (subscriptions live at most 60 min)."""
        return now >= self.not_after - margin
