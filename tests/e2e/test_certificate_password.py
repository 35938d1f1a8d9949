"""`certificate_password`: a credential whose certificate's private key is encrypted signs in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365pbx.config import load_config
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.scenario import certificate_from_pem
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import PEOPLE
from tests.sim.conftest import APP_ID, APP_SECRET

KEY_PASSWORD = "Kiwi-Lemur-Pa55phrase!"


def encrypted_certificate(path: Path) -> bytes:
    """Write a PEM with a self-signed certificate and its key encrypted; return the cert."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "m365pbx")])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()))
    path.write_bytes(cert_pem + key_pem)
    return cert_pem


async def test_an_encrypted_certificate_key_signs_in_with_its_password(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    pem = tmp_path / "graph.pem"
    tenant.apps[APP_ID].certificates.append(certificate_from_pem(encrypted_certificate(pem)))
    settings_for(sim_server, tmp_path, accounts=[])  # writes m365pbx.yaml, amended here
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    credential = data["tenants"][0]["credentials"][0]
    assert credential.pop("client_secret") == APP_SECRET
    credential["certificate_file"] = str(pem)
    credential["certificate_password"] = KEY_PASSWORD
    path.write_text(yaml.safe_dump(data))
    settings = load_config(path, environ={})
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        directory = service.tenants["contoso"].parts.directory
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        assert directory.status.last_error is None
