"""Structured header values: name-addr (From/To/Contact), Via, CSeq and parameters.

Each parser raises `FieldError` (a ValueError) on a value it cannot read, so callers can
count the message as bad input instead of crashing (design.md rule 7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


class FieldError(ValueError):
    """A header value that does not follow its grammar."""


def is_token(text: str) -> bool:
    """True if `text` is an RFC 3261 token (method names, parameter names, tags)."""
    return bool(_TOKEN.match(text))


def _split_params(text: str) -> list[str]:
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def parse_params(text: str) -> dict[str, str]:
    """Parse `;name=value;flag` into a dict (names lower-case, quotes removed)."""
    params: dict[str, str] = {}
    for part in _split_params(text):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[name.strip().lower()] = value
    return params


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact value: optional display name, URI and header parameters."""

    uri: str
    params: dict[str, str] = field(default_factory=dict)
    display: str = ""

    @property
    def tag(self) -> str | None:
        """The `tag` parameter (dialog identifier half), if present."""
        return self.params.get("tag") or None

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{display}<{self.uri}>{params}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse `"Name" <sip:a@b>;tag=x` or `sip:a@b;tag=x` (RFC 3261 §20.10, §20.20)."""
    text = value.strip()
    display = ""
    if "<" in text:
        before, _, rest = text.partition("<")
        uri, closed, after = rest.partition(">")
        if not closed or not uri.strip():
            raise FieldError(f"unbalanced <> in address {value!r}")
        display = before.strip().strip('"')
        params = parse_params(after)
    else:
        # Without <>, parameters after the URI belong to the header (RFC 3261 §20.10).
        uri, _, after = text.partition(";")
        params = parse_params(after)
    uri = uri.strip()
    if ":" not in uri or any(char.isspace() for char in uri):
        raise FieldError(f"not a URI in address {value!r}")
    return NameAddr(uri, params, display)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via entry: transport, sent-by host and port, and parameters (branch, rport...)."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        """The branch parameter that names the transaction (empty if missing)."""
        return self.params.get("branch", "")


def parse_via(value: str) -> Via:
    """Parse `SIP/2.0/UDP host:port;branch=z9hG4bK...` (RFC 3261 §20.42)."""
    protocol, _, rest = value.strip().partition(" ")
    pieces = [piece.strip() for piece in protocol.split("/")]
    if len(pieces) != 3 or pieces[0].upper() != "SIP" or pieces[1] != "2.0":
        raise FieldError(f"bad Via protocol in {value!r}")
    sent_by, _, params = rest.strip().partition(";")
    sent_by = sent_by.strip()
    if not sent_by:
        raise FieldError(f"Via without sent-by: {value!r}")
    host, port = split_host_port(sent_by)
    return Via(pieces[2].upper(), host, port, parse_params(params))


def split_host_port(text: str) -> tuple[str, int | None]:
    """Split `host`, `host:port`, `[v6]` or `[v6]:port`."""
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed:
            raise FieldError(f"unbalanced [] in {text!r}")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise FieldError(f"empty host in {text!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise FieldError(f"bad port in {text!r}")
    return host, int(port_text)


def parse_cseq(value: str) -> tuple[int, str]:
    """Parse `CSeq: 42 SUBSCRIBE` into (42, "SUBSCRIBE") (RFC 3261 §20.16)."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
        raise FieldError(f"bad CSeq {value!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise FieldError(f"CSeq number too large in {value!r}")
    return number, parts[1]


@lru_cache(maxsize=1024)
def branch_and_method(via: str, cseq: str) -> tuple[str, str]:
    """The top Via's branch ('' if none) and the CSeq method; FieldError if unreadable.

    Cached: the same values are read when a request is sent, when its response is
    checked and when the response is matched to its transaction.
    """
    _, method = parse_cseq(cseq)
    return parse_via(via).branch, method


def parse_expires(value: str | None) -> int | None:
    """Parse an Expires or Min-Expires value in seconds; None if missing or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        return None
    return int(text)


def parse_value_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `active;expires=60` (Subscription-State, Event) into the value and its params."""
    head, _, rest = value.partition(";")
    return head.strip().lower(), parse_params(rest)


def uri_user_host(uri: str) -> tuple[str, str]:
    """The user and host of `sip:user@host;params` (user empty when there is none)."""
    _, _, rest = uri.partition(":")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, host = rest.rpartition("@")
    return (user, host) if at else ("", rest)
