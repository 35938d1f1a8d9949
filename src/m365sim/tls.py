"""A private CA and a server certificate for `m365sim serve` (HTTPS on loopback).

The CA file is what a client trusts (`verify=ca.pem`, `curl --cacert ca.pem`). A CA kept in
`cert_dir` is reused across restarts, so a client configured once keeps working; the
server certificate is issued anew on each start for the names asked for.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class TlsFiles:
    """Where the PEM files are: the CA to trust, and the server's chain and key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "m365sim"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


def _new_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("m365sim local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _load_ca(cert_dir: Path, now: datetime
             ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((cert_dir / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key((cert_dir / CA_KEY_FILE).read_bytes(), None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.not_valid_after_utc - now < timedelta(days=30):
        return None
    return cert, key


def _subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys([*LOOPBACK_NAMES, *hosts]):
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 - listening on all: not a name
            continue
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _server_cert(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, hosts: list[str],
                 now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("m365sim"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=397))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_subject_names(hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def ensure_certificates(cert_dir: Path, hosts: list[str] | None = None) -> TlsFiles:
    """Write (or reuse) the CA and write a fresh server certificate into `cert_dir`.

    The server certificate names 127.0.0.1, ::1 and localhost plus `hosts`.
    """
    cert_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    loaded = _load_ca(cert_dir, now)
    if loaded is None:
        ca, ca_key = _new_ca(now)
        (cert_dir / CA_FILE).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        _write_private(cert_dir / CA_KEY_FILE, _pem_key(ca_key))
    else:
        ca, ca_key = loaded
    cert, key = _server_cert(ca, ca_key, list(hosts or []), now)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM)
    (cert_dir / CERT_FILE).write_bytes(chain)
    _write_private(cert_dir / KEY_FILE, _pem_key(key))
    return TlsFiles(cert_dir / CA_FILE, cert_dir / CERT_FILE, cert_dir / KEY_FILE)
