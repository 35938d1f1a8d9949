"""The AMI wire format: `Key: Value` lines, a message ends with an empty line.

Asterisk's `main/manager.c` sends one banner line (`Asterisk Call Manager/<version>`) on
connect, then messages of `Key: Value\\r\\n` lines closed by `\\r\\n`. Keys may repeat (e.g.
`Variable:` on Originate), so a message keeps its pairs in order; `get` finds the first,
case-insensitively. Values sent by us may not hold CR or LF: that would let a value start
a new header or action (AMI injection), so encoding refuses them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

__all__ = ["AmiMessage", "AmiParser", "AmiProtocolError", "encode_action"]

# Bounds against a peer sending garbage: no real AMI line or message comes near them.
MAX_LINE = 64 * 1024
MAX_MESSAGE = 1024 * 1024


class AmiProtocolError(Exception):
    """The peer sent something that is not AMI (too long, or not `Key: Value`)."""


class AmiMessage:
    """One AMI message (response or event): its `Key: Value` pairs in order."""

    __slots__ = ("_index", "pairs")

    def __init__(self, pairs: tuple[tuple[str, str], ...] = ()) -> None:
        self.pairs = pairs
        index: dict[str, str] = {}
        for name, value in pairs:
            index.setdefault(name.casefold(), value)
        self._index = index

    def __repr__(self) -> str:
        return f"AmiMessage({self.pairs!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AmiMessage) and other.pairs == self.pairs

    def __hash__(self) -> int:
        return hash(self.pairs)

    def get(self, key: str, default: str = "") -> str:
        """The first value of `key` (compared without case), or `default`."""
        return self._index.get(key.casefold(), default)

    def __contains__(self, key: object) -> bool:
        return str(key).casefold() in self._index

    @property
    def event(self) -> str:
        """The event's name (`Event:`), or '' for a response."""
        return self._index.get("event", "")

    @property
    def response(self) -> str:
        """`Success`, `Error`, `Goodbye`, ... for a response, or '' for an event."""
        return self._index.get("response", "")

    @property
    def action_id(self) -> str:
        """The ActionID it answers, or ''."""
        return self._index.get("actionid", "")

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

    def feed(self, data: bytes) -> Iterator[AmiMessage]:
        """Take bytes; yield each message they complete (AmiProtocolError on garbage)."""
        buffer = self._buffer + data
        if self.banner is None:
            end = buffer.find(b"\n")
            if end < 0:
                self._buffer = buffer
                self._check(buffer)
                return
            self.banner = buffer[:end].rstrip(b"\r").decode("utf-8", errors="replace")
            buffer = buffer[end + 1:]
        start = 0
        while True:
            end = buffer.find(b"\r\n\r\n", start)
            if end < 0:
                break
            block, start = buffer[start:end], end + 4
            if block.strip():
                yield _message(block)
        self._buffer = buffer[start:]
        self._check(self._buffer)

    @staticmethod
    def _check(rest: bytes) -> None:
        if len(rest) > MAX_MESSAGE:
            raise AmiProtocolError(f"a message longer than {MAX_MESSAGE} bytes")
        if len(rest) > MAX_LINE and rest.rfind(b"\n") < len(rest) - MAX_LINE:
            raise AmiProtocolError(f"a line longer than {MAX_LINE} bytes")


def _message(block: bytes) -> AmiMessage:
    pairs = []
    for line in block.decode("utf-8", errors="replace").split("\r\n"):
        key, colon, value = line.partition(":")
        if not colon:
            if line.strip():
                # Command output (Action: Command) comes as bare lines; keep them as output.
                pairs.append(("Output", line))
            continue
        pairs.append((key.strip(), value.strip()))
    return AmiMessage(tuple(pairs))
