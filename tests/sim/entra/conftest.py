"""Fixtures of the Entra tests: a second tenant (Fabrikam) with the awkward apps and users."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365sim.model import Tenant
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from m365sim.tokens import b64url
from tests.sim.conftest import PASSWORD
from tests.sim.entra.msal_support import SimulatorSession

FAB_ID = "0d1f3e55-2b51-4c6c-9d8e-5a4b3c2d1e0f"
CONFIDENTIAL_APP = "1b0c2d3e-4f50-4a61-8b72-9c8d7e6f5a4b"  # no public client flows
DESKTOP_APP = "2c1d3e4f-5061-4b72-9c83-ad9e8f7a6b5c"  # public client, no credential
CERT_APP = "3d2e4f50-6172-4c83-ad94-be0f9a8b7c6d"  # certificate only
EXPIRED_APP = "4e3f5061-7283-4d94-be05-cf1a0b9c8d7e"  # its only secret has expired
CONFIDENTIAL_SECRET = "Kq8~confidential.secret-1"
EXPIRED_SECRET = "Zz1~expired.secret-value"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
TOKEN_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Certificate:
    """A client certificate with its private key and thumbprints."""

    key: rsa.RSAPrivateKey
    pem: str
    x5t: str
    x5t_s256: str

    def private_pem(self) -> str:
        """The private key as PEM (what MSAL takes)."""
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()


def make_certificate(name: str = "m365pbx") -> Certificate:
    """A self-signed client certificate as an admin would upload to the app registration."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.now(UTC) - timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(key, cert.public_bytes(serialization.Encoding.PEM).decode(),
                       b64url(hashlib.sha1(der).digest()), b64url(hashlib.sha256(der).digest()))


@pytest.fixture
def msal_http(sim_server: RunningServer, monkeypatch: pytest.MonkeyPatch
              ) -> Iterator[SimulatorSession]:
    """requests for MSAL trusting the simulator's CA; closed before the server stops."""
    # These variables would override `verify=` inside requests.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    http = SimulatorSession(sim_server)
    yield http
    http.close()


@pytest.fixture(scope="session")
def client_cert() -> Certificate:
    """The certificate registered on CERT_APP."""
    return make_certificate()


def fabrikam_scenario(cert: Certificate) -> dict[str, Any]:
    """A tenant holding one app and one user for each failure Entra reports."""
    delegated = ["User.Read", "Presence.Read.All", "offline_access"]
    return {"tenants": [{
        "id": FAB_ID, "name": "Fabrikam", "domains": ["fabrikam.com"],
        "apps": [
            {"app_id": CONFIDENTIAL_APP, "name": "daemon", "public_client": False,
             "secrets": [{"value": CONFIDENTIAL_SECRET}], "delegated": delegated,
             "application": ["User.Read.All"]},
            {"app_id": DESKTOP_APP, "name": "desktop", "public_client": True,
             "delegated": delegated},
            {"app_id": CERT_APP, "name": "cert", "certificates": [{"pem": cert.pem}],
             "application": ["Presence.Read.All", "User.Read.All"], "delegated": delegated},
            {"app_id": EXPIRED_APP, "name": "old",
             "secrets": [{"value": EXPIRED_SECRET, "expires": "2025-12-31T00:00:00Z"}],
             "application": ["User.Read.All"]},
        ],
        "users": [
            {"upn": "svc@fabrikam.com", "password": PASSWORD},
            {"upn": "locked@fabrikam.com", "password": PASSWORD, "locked": True},
            {"upn": "blocked@fabrikam.com", "password": PASSWORD,
             "conditional_access_blocked": True},
            {"upn": "enroll@fabrikam.com", "password": PASSWORD,
             "mfa_enrollment_required": True},
            {"upn": "mfa@fabrikam.com", "password": PASSWORD, "mfa": True},
        ],
    }]}


@pytest.fixture
def fabrikam(sim: Simulator, client_cert: Certificate) -> Tenant:
    """Fabrikam loaded into `sim` next to Contoso."""
    (tenant,) = load_scenario(sim, fabrikam_scenario(client_cert))
    return tenant


def assertion(cert: Certificate, *, client_id: str = CERT_APP, audience: str,
              now: float | None = None, lifetime: int = 600, alg: str = "RS256",
              header: dict[str, Any] | None = None, **claims: Any) -> str:
    """A client assertion signed with `cert`, as certificate-credentials.md describes."""
    issued = int(now if now is not None else time.time())
    body = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
            "nbf": issued, "iat": issued, "exp": issued + lifetime, **claims}
    headers = header if header is not None else (
        {"x5t#S256": cert.x5t_s256} if alg == "PS256" else {"x5t": cert.x5t})
    return jwt.encode(body, cert.key, algorithm=alg, headers=headers)


async def token(client: httpx.AsyncClient, tenant: str, **form: str) -> httpx.Response:
    """POST a form to the tenant's token endpoint."""
    return await client.post(f"/{tenant}/oauth2/v2.0/token", data=form)


def assert_aad_error(response: httpx.Response, error: str, code: int, status: int = 400
                     ) -> dict[str, Any]:
    """The answer is Entra's error body with this `error` and AADSTS number."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)
    return body
