"""Validation and delivery over real sockets on 127.0.0.1: plain HTTP when allowed, and
HTTPS verified against a CA file (what `m365sim serve` does for a demo endpoint)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import pathlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from m365sim.simulator import Simulator
from tests.sim.subscriptions.conftest import (
    presence_change,
    subscription_body,
    svc_headers,
    user_id,
)
from tests.sim.subscriptions.helpers import Receiver, eventually


def _tls_files(folder: pathlib.Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA) and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


async def _serve(receiver: Receiver, **tls: str) -> AsyncIterator[int]:
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off", **tls))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        # force_exit: do not wait 30 s for the TLS shutdown of a refused handshake.
        server.should_exit = server.force_exit = True
        await task


@pytest.fixture
async def real(sim: Simulator) -> AsyncIterator[Simulator]:
    """The simulator running with its real HTTP client."""
    task = asyncio.create_task(sim.run())
    yield sim
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_plain_http_on_loopback_when_allowed(real: Simulator, client: httpx.AsyncClient,
                                                   receiver: Receiver) -> None:
    real.subscriptions.settings.allow_http_loopback = True
    anna = user_id(real, "anna@contoso.com")
    async for port in _serve(receiver):
        body = subscription_body(real, f"communications/presences/{anna}",
                                 notificationUrl=f"http://127.0.0.1:{port}/hook?x=1")
        created = await client.post("/v1.0/subscriptions", json=body, headers=svc_headers(real))
        assert created.status_code == 201, created.text
        real.bus.publish(presence_change(anna))
        await eventually(lambda: len(receiver.items) == 1)
        assert receiver.posts[0]["query"] == {"x": "1"}


async def test_https_is_verified_against_the_configured_ca(
    real: Simulator, client: httpx.AsyncClient, receiver: Receiver, tmp_path: pathlib.Path
) -> None:
    cert_file, key_file = _tls_files(tmp_path)
    anna = user_id(real, "anna@contoso.com")
    async for port in _serve(receiver, ssl_certfile=cert_file, ssl_keyfile=key_file):
        body = subscription_body(real, f"communications/presences/{anna}",
                                 notificationUrl=f"https://127.0.0.1:{port}/hook")
        untrusted = await client.post("/v1.0/subscriptions", json=body,
                                      headers=svc_headers(real))
        assert untrusted.status_code == 400  # a self-signed endpoint, as Graph refuses it
        assert receiver.validations == []
        real.subscriptions.settings.ca_file = cert_file
        real.subscriptions.transport = None  # a new client picks up the CA file
        created = await client.post("/v1.0/subscriptions", json=body, headers=svc_headers(real))
        assert created.status_code == 201, created.text
        real.bus.publish(presence_change(anna))
        await eventually(lambda: len(receiver.items) == 1)
