"""The AMI wire format: `Key: Value` lines, a message ends with an empty line.

Asterisk's `main/manager.c` sends one banner line (`Asterisk Call Manager/<version>`) on
connect, then messages of `Key: Value\\r\\n` lines closed by `\\r\\n`. Keys may repeat (e.g.
`Variable:` on Originate), so a message keeps its pairs in order; `get` finds the first,
case-insensitively. Values sent by us may not hold CR or LF: that would let a value start
a new header or action (AMI injection), so encoding refuses them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["AmiMessage", "AmiParser", "AmiProtocolError", "encode_action"]

# Bounds against a peer sending garbage: no real AMI line or message comes near them.
MAX_LINE = 64 * 1024
MAX_MESSAGE = 1024 * 1024


class AmiProtocolError(Exception):
    """The peer sent something that is not AMI (too long, or not `Key: Value`)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message (response or event): its `Key: Value` pairs in order."""

    pairs: tuple[tuple[str, str], ...] = field(default=())

    def get(self, key: str, default: str = "") -> str:
        """The first value of `key` (compared without case), or `default`."""
        folded = key.casefold()
        for name, value in self.pairs:
            if name.casefold() == folded:
                return value
        return default

    def __contains__(self, key: object) -> bool:
        folded = str(key).casefold()
        return any(name.casefold() == folded for name, _ in self.pairs)

    @property
    def event(self) -> str:
        """The event's name (`Event:`), or '' for a response."""
        return self.get("Event")

    @property
    def response(self) -> str:
        """`Success`, `Error`, `Goodbye`, ... for a response, or '' for an event."""
        return self.get("Response")

    @property
    def action_id(self) -> str:
        """The ActionID it answers, or ''."""
        return self.get("ActionID")

    def as_dict(self) -> dict[str, str]:
        """The pairs as a dict (the first value of each repeated key)."""
        found: dict[str, str] = {}
        for name, value in self.pairs:
            found.setdefault(name, value)
        return found


def _clean(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"AMI {what} may not contain a line break: {text[:40]!r}")
    return text


def encode_action(action: str, fields: Mapping[str, str], action_id: str) -> bytes:
    """One action as bytes; ValueError if a key or value holds a line break."""
    lines = [f"Action: {_clean(action, 'action name')}", f"ActionID: {_clean(action_id, 'id')}"]
    for key, value in fields.items():
        if not key or ":" in key:
            raise ValueError(f"not an AMI header name: {key!r}")
        lines.append(f"{_clean(key, 'header name')}: {_clean(str(value), 'value')}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class AmiParser:
    """Splits the byte stream from Asterisk into the banner and messages."""

    def __init__(self) -> None:
        self.banner: str | None = None
        self._buffer = b""
        self._pairs: list[tuple[str, str]] = []
        self._size = 0

    def feed(self, data: bytes) -> Iterator[AmiMessage]:
        """Take bytes; yield each message they complete (AmiProtocolError on garbage)."""
        self._buffer += data
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    raise AmiProtocolError(f"a line longer than {MAX_LINE} bytes")
                return
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1:]
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if self.banner is None:
                self.banner = line
                continue
            if not line:
                if self._pairs:
                    message, self._pairs, self._size = AmiMessage(tuple(self._pairs)), [], 0
                    yield message
                continue
            self._size += len(raw)
            if self._size > MAX_MESSAGE:
                raise AmiProtocolError(f"a message longer than {MAX_MESSAGE} bytes")
            key, colon, value = line.partition(":")
            if not colon:
                # Command output (Action: Command) comes as bare lines; keep them as output.
                self._pairs.append(("Output", line))
                continue
            self._pairs.append((key.strip(), value.strip()))
