"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

Supported: MD5 and SHA-256 (and their `-sess` variants), `qop=auth` (preferred) or
`auth-int`, and challenges without qop (RFC 2069 compatibility). When a server offers
several challenges the strongest algorithm wins (RFC 8760 §2.4: SHA-256 before MD5).
Usernames and passwords are opaque: any character works, quotes and backslashes are
escaped in the header (RFC 7616 §3.4.4 quoted-string).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from m365pbx.pbx.sip.fields import FieldError

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}
_PREFERENCE = ["SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS"]


class DigestError(ValueError):
    """A challenge we cannot answer (unknown scheme, algorithm or qop, missing nonce)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A digest username and password; repr never shows the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Challenge:
    """One parsed WWW-Authenticate or Proxy-Authenticate Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @property
    def reply_header(self) -> str:
        """Authorization for a 401 challenge, Proxy-Authorization for a 407."""
        return "Proxy-Authorization" if self.proxy else "Authorization"


def _auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    index, length = 0, len(text)
    while index < length:
        while index < length and text[index] in " \t,":
            index += 1
        start = index
        while index < length and text[index] not in "=, \t":
            index += 1
        name = text[start:index].strip().lower()
        while index < length and text[index] in " \t":
            index += 1
        if index >= length or text[index] != "=":
            if name:
                raise FieldError(f"auth parameter {name!r} without a value")
            continue
        index += 1
        while index < length and text[index] in " \t":
            index += 1
        if index < length and text[index] == '"':
            index += 1
            value: list[str] = []
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                value.append(text[index])
                index += 1
            if index >= length:
                raise FieldError("unterminated quoted string in a challenge")
            index += 1
            params[name] = "".join(value)
        else:
            start = index
            while index < length and text[index] != ",":
                index += 1
            params[name] = text[start:index].strip()
    return params


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge:
    """Parse `Digest realm="...", nonce="...", ...`; DigestError if it cannot be answered."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"authentication scheme {scheme!r} is not Digest")
    try:
        params = _auth_params(rest)
    except FieldError as exc:
        raise DigestError(str(exc)) from None
    algorithm = params.get("algorithm", "MD5").upper()
    if algorithm not in _PREFERENCE:
        raise DigestError(f"digest algorithm {algorithm} is not supported")
    if "nonce" not in params or "realm" not in params:
        raise DigestError("challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    if qop and not {"auth", "auth-int"} & set(qop):
        raise DigestError(f"qop {','.join(qop)} is not supported")
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def best_challenge(values: list[str], *, proxy: bool = False) -> Challenge:
    """The strongest answerable challenge among several header values."""
    usable: list[Challenge] = []
    problems: list[str] = []
    for value in values:
        try:
            usable.append(parse_challenge(value, proxy=proxy))
        except DigestError as exc:
            problems.append(str(exc))
    if not usable:
        raise DigestError("; ".join(problems) or "no challenge in the response")
    return min(usable, key=lambda c: _PREFERENCE.index(c.algorithm))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def digest_response(
    challenge: Challenge,
    credentials: Credentials,
    method: str,
    uri: str,
    *,
    body: bytes = b"",
    cnonce: str = "",
    nc: int = 1,
) -> tuple[str, str, str]:
    """Compute (response, qop, cnonce) per RFC 7616 §3.4.1 for one request."""
    algorithm = challenge.algorithm
    digest = _HASHES[algorithm.removesuffix("-SESS")]
    cnonce = cnonce or secrets.token_hex(8)
    ha1 = digest(f"{credentials.username}:{challenge.realm}:{credentials.password}".encode())
    if algorithm.endswith("-SESS"):
        ha1 = digest(f"{ha1}:{challenge.nonce}:{cnonce}".encode())
    qop = "auth" if "auth" in challenge.qop else ("auth-int" if challenge.qop else "")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + digest(body)
    ha2 = digest(a2.encode())
    if qop:
        response = digest(f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:{qop}:{ha2}".encode())
    else:
        response = digest(f"{ha1}:{challenge.nonce}:{ha2}".encode())
    return response, qop, cnonce


def authorization(
    challenge: Challenge,
    credentials: Credentials,
    method: str,
    uri: str,
    *,
    body: bytes = b"",
    cnonce: str = "",
    nc: int = 1,
) -> str:
    """The value of the Authorization / Proxy-Authorization header for one request."""
    response, qop, cnonce = digest_response(
        challenge, credentials, method, uri, body=body, cnonce=cnonce, nc=nc
    )
    parts = [
        f"username={_quote(credentials.username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f'response="{response}"',
        f"algorithm={challenge.algorithm}",
    ]
    if qop:
        parts += [f"qop={qop}", f"nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)


class DigestSession:
    """Answers challenges for one set of credentials and reuses the nonce (nc counts up)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._challenge: Challenge | None = None
        self._nc = 0

    @property
    def challenge(self) -> Challenge | None:
        """The challenge currently answered, if any."""
        return self._challenge

    def accept(self, challenge: Challenge) -> None:
        """Use a new challenge from a 401/407 for the following requests."""
        self._challenge = challenge
        self._nc = 0

    def header(self, method: str, uri: str, body: bytes = b"") -> tuple[str, str] | None:
        """(header name, value) answering the current challenge, or None before any."""
        if self._challenge is None:
            return None
        self._nc += 1
        value = authorization(
            self._challenge, self.credentials, method, uri, body=body, nc=self._nc
        )
        return self._challenge.reply_header, value
