"""Opaque, tamper-evident `$skiptoken` and `$deltatoken` values.

Graph's paging and delta tokens are opaque strings a client must hand back verbatim
(concepts/paging.md). The simulator packs its cursor into JSON, base64url-encodes it
and appends an HMAC, so an edited token is refused instead of being half-understood.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any


class TokenError(ValueError):
    """A token that was not issued by this simulator or was altered."""


class TokenSigner:
    """Seals and opens token payloads with a per-simulator secret."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def seal(self, kind: str, payload: dict[str, Any]) -> str:
        """An opaque token for `payload`, bound to its `kind` (skip / delta)."""
        body = json.dumps({"k": kind, **payload}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        return _b64(body) + "." + _b64(mac)

    def open(self, kind: str, token: str) -> dict[str, Any]:
        """The payload of a token of `kind`; TokenError if it is not genuine."""
        encoded, dot, signature = token.partition(".")
        if not dot:
            raise TokenError("malformed token")
        try:
            body = _unb64(encoded)
            mac = _unb64(signature)
        except ValueError:
            raise TokenError("malformed token") from None
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:12]
        if not hmac.compare_digest(mac, expected):
            raise TokenError("token signature does not match")
        payload = json.loads(body)
        if not isinstance(payload, dict) or payload.pop("k", None) != kind:
            raise TokenError("token of another kind")
        return payload


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(str(exc)) from None
