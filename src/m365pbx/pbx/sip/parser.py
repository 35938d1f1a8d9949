"""Parse SIP messages from datagrams and streams, refusing anything malformed or oversized.

Tolerated (RFC 3261 §7): compact header names, header folding (a line starting with
space or tab continues the previous one), empty lines before the start line (CRLF
keep-alives, RFC 5626 §4.4.1). Refused with `SipParseError`: a bad start line, a header
line without a colon or with a non-token name, a missing mandatory header, a CSeq whose
method differs from the request's, a wrong Content-Length, non-UTF-8 headers, and any
message beyond the size limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.pbx.sip.fields import FieldError, branch_and_method, is_token
from m365pbx.pbx.sip.message import (
    CANONICAL_NAMES,
    SIP_VERSION,
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    canonical_name,
)

_MANDATORY = ("via", "from", "to", "call-id", "cseq")


class SipParseError(ValueError):
    """A message that is not valid SIP; `reason` is a short code used for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Upper bounds that keep a hostile peer from using up memory or time."""

    max_message: int = 65_535
    max_head: int = 16_384
    max_header_line: int = 4_096
    max_headers: int = 100
    max_body: int = 65_535


DEFAULT_LIMITS = ParseLimits()


def _parse_start_line(line: str) -> SipRequest | SipResponse:
    if line.startswith(SIP_VERSION + " "):
        _, status_text, reason = [*line.split(" ", 2), ""][:3]
        if len(status_text) != 3 or not status_text.isdigit() or not 100 <= int(status_text) <= 699:
            raise SipParseError("bad-start-line", f"bad status code in {line[:80]!r}")
        return SipResponse(int(status_text), reason.strip())
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != SIP_VERSION:
        raise SipParseError("bad-start-line", f"not a SIP start line: {line[:80]!r}")
    method, uri = parts[0], parts[1]
    if not is_token(method) or ":" not in uri:
        raise SipParseError("bad-start-line", f"bad method or URI in {line[:80]!r}")
    return SipRequest(method, uri)


# Header names already seen to be tokens (bounded: a peer inventing names cannot grow it).
_TOKEN_NAMES: set[str] = set()
_TOKEN_NAMES_MAX = 1_000


def _parse_header_lines(lines: list[str], limits: ParseLimits) -> Headers:
    headers = Headers()
    items = headers.items  # filled directly: this runs for every message received
    longest = limits.max_header_line
    folded = False
    for line in lines:
        if len(line) > longest:
            raise SipParseError("oversized", f"header line of {len(line)} characters")
        if line[:1] in (" ", "\t"):
            # Folding (RFC 3261 §7.3.1): the line continues the previous header's value.
            if not items:
                raise SipParseError("bad-header", "continuation line before any header")
            headers.extend_last(line.strip())
            folded = True
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if name not in _TOKEN_NAMES:
            if not colon or not is_token(name):
                raise SipParseError("bad-header", f"not a header line: {line[:80]!r}")
            if len(_TOKEN_NAMES) < _TOKEN_NAMES_MAX:
                _TOKEN_NAMES.add(name)
        elif not colon:
            raise SipParseError("bad-header", f"not a header line: {line[:80]!r}")
        items.append((name, value.strip()))
    if len(items) > limits.max_headers:
        # Counted at the end: the header section as a whole is bounded by max_head.
        raise SipParseError("oversized", f"more than {limits.max_headers} headers")
    if folded:
        for name, value in items:
            if len(value) > longest:
                raise SipParseError("oversized", f"folded header {name} too long")
    return headers


def _check(message: SipMessage) -> None:
    for name in _MANDATORY:
        if not message.headers.get(name):
            raise SipParseError("missing-header", f"no {name} header")
    try:
        _, method = branch_and_method(
            message.headers.get("via") or "", message.headers.get("cseq") or ""
        )
    except FieldError as exc:
        raise SipParseError("bad-header", str(exc)) from None
    if isinstance(message, SipRequest) and method != message.method:
        raise SipParseError("bad-header", f"CSeq method {method} in a {message.method}")


def content_length(headers: Headers) -> int | None:
    """The declared Content-Length, None if absent; SipParseError if unreadable or repeated."""
    known = CANONICAL_NAMES.get
    values = {
        v.strip() for n, v in headers.items if (known(n) or canonical_name(n)) == "content-length"
    }
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("content-length", f"conflicting Content-Length values {values}")
    text = values.pop()
    if not text.isdigit() or len(text) > 9:
        raise SipParseError("content-length", f"bad Content-Length {text!r}")
    return int(text)


def parse_head(head: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMessage:
    """Parse a start line plus header lines (without the blank line) into a bodiless message."""
    if len(head) > limits.max_head:
        raise SipParseError("oversized", f"header section of {len(head)} bytes")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("encoding", "header section is not UTF-8") from None
    if "\x00" in text:
        raise SipParseError("encoding", "NUL character in the header section")
    lines = text.split("\r\n")
    message = _parse_start_line(lines[0])
    message.headers = _parse_header_lines(lines[1:], limits)
    _check(message)
    return message


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    data = data.lstrip(b"\r\n")
    head, separator, rest = data.partition(b"\r\n\r\n")
    if not separator:
        raise SipParseError("truncated", "no blank line after the headers")
    return head, rest


def parse_datagram(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMessage:
    """Parse one UDP datagram holding one SIP message."""
    if len(data) > limits.max_message:
        raise SipParseError("oversized", f"message of {len(data)} bytes")
    head, rest = _split_head(data)
    message = parse_head(head, limits)
    declared = content_length(message.headers)
    if declared is None:
        # RFC 3261 §18.3: over UDP the body runs to the end of the datagram.
        declared = len(rest)
    if declared > len(rest):
        raise SipParseError("content-length", f"Content-Length {declared} > {len(rest)} bytes")
    if declared > limits.max_body:
        raise SipParseError("oversized", f"body of {declared} bytes")
    # RFC 3261 §18.3: bytes beyond Content-Length in a datagram are discarded.
    message.body = rest[:declared]
    return message


class StreamParser:
    """Frames SIP messages out of a TCP byte stream; Content-Length is mandatory there."""

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Whether part of a message has arrived (CRLF keep-alives aside)."""
        return bool(self._buffer) and self._buffer != b"\r"

    def feed(self, data: bytes) -> list[SipMessage]:
        """Add received bytes; return the complete messages, SipParseError on garbage.

        After an error the stream cannot be resynchronised: close the connection.
        """
        self._buffer.extend(data)
        messages: list[SipMessage] = []
        while True:
            # Skip CRLF keep-alives between messages (RFC 5626 §4.4.1).
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._limits.max_head:
                    raise SipParseError("oversized", "header section without end")
                return messages
            message = parse_head(bytes(self._buffer[:end]), self._limits)
            declared = content_length(message.headers)
            if declared is None:
                raise SipParseError("content-length", "no Content-Length on a stream")
            if declared > self._limits.max_body:
                raise SipParseError("oversized", f"body of {declared} bytes")
            start = end + 4
            if len(self._buffer) < start + declared:
                return messages
            message.body = bytes(self._buffer[start : start + declared])
            del self._buffer[: start + declared]
            messages.append(message)
