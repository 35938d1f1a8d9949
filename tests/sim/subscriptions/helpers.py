"""Helpers for the subscriptions tests: a receiver app, certificates, schemas, waiting."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send


@dataclass
class Receiver:
    """An in-process notification endpoint that records what Graph (the simulator) sends."""

    validations: list[dict[str, Any]] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    # How validation requests are answered: echo, status, wrong-body, html, slow.
    validation_mode: str = "echo"
    validation_delay_s: float = 0.0
    status: int = 202
    fail_next: int = 0
    delay_s: float = 0.0
    on_post: Callable[[dict[str, Any]], None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self._answer(request)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        token = request.query_params.get("validationToken")
        if token is not None:
            self.validations.append({
                "url": str(request.url), "path": request.url.path, "token": token,
                "raw_query": request.scope["query_string"].decode(),
                "content_type": request.headers.get("content-type"),
                "query": dict(request.query_params),
            })
            if self.validation_delay_s:
                await asyncio.sleep(self.validation_delay_s)
            if self.validation_mode == "status":
                return PlainTextResponse(token, status_code=500)
            if self.validation_mode == "wrong-body":
                return PlainTextResponse(urllib.parse.quote(token))
            if self.validation_mode == "html":
                return Response(token, media_type="text/html")
            return PlainTextResponse(token)
        body = json.loads(await request.body())
        entry = {"path": request.url.path, "query": dict(request.query_params), "body": body,
                 "content_type": request.headers.get("content-type")}
        self.posts.append(entry)
        if self.on_post is not None:
            self.on_post(entry)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=503)
        return Response(status_code=self.status)

    @property
    def items(self) -> list[dict[str, Any]]:
        """Every notification received, in order."""
        return [item for post in self.posts for item in post["body"]["value"]]

    def changes(self) -> list[dict[str, Any]]:
        """The change notifications received (not lifecycle ones)."""
        return [i for i in self.items if "lifecycleEvent" not in i]

    def lifecycle(self) -> list[dict[str, Any]]:
        """The lifecycle notifications received."""
        return [i for i in self.items if "lifecycleEvent" in i]


async def eventually(predicate: Callable[[], bool], *, timeout_s: float = 3.0) -> None:
    """Yield to the event loop until `predicate()` holds (wall-clock deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


async def settle(rounds: int = 50) -> None:
    """Let pending tasks run (to show that nothing more happens)."""
    for _ in range(rounds):
        await asyncio.sleep(0.001)


@dataclass(frozen=True)
class EncryptionKey:
    """A subscriber's encryption certificate (base64 DER) and private key."""

    private_key: rsa.RSAPrivateKey
    certificate_b64: str
    der: bytes


def make_encryption_key(bits: int = 2048) -> EncryptionKey:
    """A self-signed certificate as a subscriber would upload it."""
    import base64

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-encryption")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    return EncryptionKey(key, base64.b64encode(der).decode(), der)
