"""SIP messages (RFC 3261 §7): requests, responses and their header list, with serialisation.

Headers keep their order and spelling; lookups are case-insensitive and understand the
compact forms of RFC 3261 §7.3.3 (and `o`/`u` of RFC 6665), so `i:` and `Call-ID:` are the
same header.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 and §20, RFC 6665 §8.2.1 (o = Event, u = Allow-Events), RFC 3515 (r, b).
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
}

# Headers whose value may hold several comma-separated entries (RFC 3261 §7.3.1).
_LIST_HEADERS = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require", "accept"}
)


# Header names as seen so far → canonical names: looked up several times per message.
CANONICAL_NAMES: dict[str, str] = {}
_CANONICAL_NAMES_MAX = 1_000  # a peer inventing names cannot grow it without bound


def canonical_name(name: str) -> str:
    """The lower-case full name of a header, with compact forms expanded."""
    found = CANONICAL_NAMES.get(name)
    if found is None:
        lowered = name.strip().lower()
        found = COMPACT_FORMS.get(lowered, lowered)
        if len(CANONICAL_NAMES) < _CANONICAL_NAMES_MAX:
            CANONICAL_NAMES[name] = found
    return found


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, leaving commas in quotes and <...> alone."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for char in value:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">":
            angle = max(0, angle - 1)
        elif char == "," and not quoted and angle == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


@dataclass(slots=True)
class Headers:
    """An ordered list of (name, value) header fields with case-insensitive lookups."""

    items: list[tuple[str, str]] = field(default_factory=list)
    # Canonical name → first value, built at the first lookup (a message is read several
    # times per header); every change through the methods below drops it.
    _first: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        self.items.append((name, value))
        self._first = None

    def extend_last(self, text: str) -> None:
        """Continue the last field's value with `text` (a folded line); IndexError if none."""
        name, value = self.items[-1]
        self.items[-1] = (name, f"{value} {text}".strip())
        self._first = None

    def get(self, name: str) -> str | None:
        """The first value of header `name` (compact forms accepted), or None."""
        first = self._first
        if first is None:
            first = {}
            known = CANONICAL_NAMES.get
            for key, value in self.items:
                first.setdefault(known(key) or canonical_name(key), value)
            self._first = first
        return first.get(CANONICAL_NAMES.get(name) or canonical_name(name))

    def get_all(self, name: str) -> list[str]:
        """Every value of header `name`; list headers are split at top-level commas."""
        wanted = canonical_name(name)
        values: list[str] = []
        for key, value in self.items:
            if canonical_name(key) == wanted:
                values.extend(split_list(value) if wanted in _LIST_HEADERS else [value])
        return values

    def set(self, name: str, value: str) -> None:
        """Replace every field called `name` by one with `value` (added at the end if new)."""
        wanted = canonical_name(name)
        kept = [(key, val) for key, val in self.items if canonical_name(key) != wanted]
        kept.append((name, value))
        self.items = kept
        self._first = None

    def remove(self, name: str) -> None:
        """Drop every field called `name`."""
        wanted = canonical_name(name)
        self.items = [(key, val) for key, val in self.items if canonical_name(key) != wanted]
        self._first = None

    def copy(self) -> Headers:
        """A shallow copy that can be changed independently."""
        return Headers(list(self.items))


def _serialise(start: str, headers: Headers, body: bytes) -> bytes:
    lines = [start]
    known = CANONICAL_NAMES.get
    lines.extend(
        f"{name}: {value}"
        for name, value in headers.items
        if (known(name) or canonical_name(name)) != "content-length"
    )
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


@dataclass(slots=True)
class SipRequest:
    """A SIP request: method, Request-URI, headers and body."""

    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The request on the wire, with a Content-Length that matches the body."""
        return _serialise(f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body)

    @property
    def call_id(self) -> str:
        """The Call-ID header (empty if missing)."""
        return self.headers.get("call-id") or ""


@dataclass(slots=True)
class SipResponse:
    """A SIP response: status code, reason phrase, headers and body."""

    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The response on the wire, with a Content-Length that matches the body."""
        return _serialise(f"{SIP_VERSION} {self.status} {self.reason}", self.headers, self.body)

    @property
    def call_id(self) -> str:
        """The Call-ID header (empty if missing)."""
        return self.headers.get("call-id") or ""

    @property
    def is_final(self) -> bool:
        """True for 2xx-6xx, False for provisional 1xx."""
        return self.status >= 200

    @property
    def is_success(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300


SipMessage = SipRequest | SipResponse

# RFC 3261 §21 reason phrases for the responses this user agent sends.
REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    481: "Subscription Does Not Exist",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
}

# Headers a response copies from the request it answers (RFC 3261 §8.2.6.2).
_ECHOED = ("via", "from", "to", "call-id", "cseq")


def response_for(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    extra: Iterable[tuple[str, str]] = (),
) -> SipResponse:
    """A response to `request` that copies Via, From, To, Call-ID and CSeq."""
    headers = Headers()
    for name, value in request.headers:
        if canonical_name(name) in _ECHOED:
            headers.add(name, value)
    for name, value in extra:
        headers.add(name, value)
    return SipResponse(status, reason or REASONS.get(status, "Unknown"), headers)
