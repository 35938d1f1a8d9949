"""Turn NOTIFY bodies of one person into PBX → Teams events (line state, phone presence).

Bodies that are not valid (wrong content type, not XML, XML bombs, wrong document) are
counted and ignored; the subscription and everyone else carry on (design.md rule 7). An
empty body means the server holds no state for the person: idle line, nothing set.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.base import LineStateEvent, PbxEvent, PbxPresenceEvent
from m365pbx.pbx.sip.counters import BadInputCounter
from m365pbx.pbx.sip.dialoginfo import DIALOG_INFO_TYPE, DialogTracker, parse_dialog_info
from m365pbx.pbx.sip.pidf import PIDF_TYPE, PhonePresence, parse_pidf
from m365pbx.pbx.sip.subscription import Subscription
from m365pbx.pbx.sip.xmlsafe import XmlError

Emit = Callable[[PbxEvent], None]
Terminated = Callable[[Subscription, str, float | None], None]


class _Watch(ABC):
    content_type = ""

    def __init__(
        self,
        key: str,
        emit: Emit,
        counter: BadInputCounter,
        now: Callable[[], datetime],
        on_terminated: Terminated,
        resync: Callable[[Subscription], None],
    ) -> None:
        self.key = key
        self._emit = emit
        self._counter = counter
        self._now = now
        self._on_terminated = on_terminated
        self._resync = resync
        self._init_state()

    @abstractmethod
    def _init_state(self) -> None:
        """Reset what the subclass knows about the watched state."""

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        """Check the body's type, then let the subclass read it; False if it is bad."""
        if body.strip() and content_type != self.content_type:
            self._counter.record("unsupported-body", f"{content_type!r} for {self.key}")
            return False
        try:
            self.read(subscription, body if body.strip() else b"")
        except XmlError as exc:
            self._counter.record("xml", f"NOTIFY body for {self.key}: {exc}")
            return False
        return True

    @abstractmethod
    def read(self, subscription: Subscription, body: bytes) -> None:
        """Use one valid-looking body (empty: no state at the server)."""

    def terminated(
        self, subscription: Subscription, reason: str, retry_after: float | None
    ) -> None:
        """Hand the termination to the connection, which re-subscribes or gives up."""
        self._on_terminated(subscription, reason, retry_after)

    def bad_notify(self, reason: str, detail: str) -> None:
        """Count a NOTIFY that could not be used."""
        self._counter.record(reason, f"{detail} ({self.key})")


class LineWatch(_Watch):
    """Follows one person's dialogs (RFC 4235) and emits LineStateEvents on change."""

    content_type = DIALOG_INFO_TYPE

    def _init_state(self) -> None:
        self.tracker = DialogTracker()
        self.state: LineState | None = None

    def read(self, subscription: Subscription, body: bytes) -> None:
        """Fold a dialog-info document in; emit when the line state changed."""
        if not body:
            self.tracker.reset()
        else:
            info = parse_dialog_info(body)
            if not self.tracker.apply(info):
                # RFC 4235 §4.1.2: a gap in partial versions → fetch the full state.
                self._resync(subscription)
                return
        state = self.tracker.line_state
        if state != self.state:
            self.state = state
            self._emit(LineStateEvent(self.key, state, self._now()))


class PresenceWatch(_Watch):
    """Follows what one person set on the phone (PIDF) and emits PbxPresenceEvents."""

    content_type = PIDF_TYPE

    def _init_state(self) -> None:
        self.state: PhonePresence | None = None

    def read(self, subscription: Subscription, body: bytes) -> None:
        """Read the PIDF (our own elements skipped); emit when presence or note changed."""
        phone = parse_pidf(body) if body else PhonePresence(PbxPresence.ONLINE, "", False)
        current = (phone.presence, phone.note)
        if self.state is None or (self.state.presence, self.state.note) != current:
            self.state = phone
            self._emit(PbxPresenceEvent(self.key, phone.presence, self._now(), phone.note))


class EventQueue:
    """Numbers events and buffers them for one consumer; when full, the oldest is dropped."""

    def __init__(self, size: int) -> None:
        # Unbounded underneath so the end marker always fits; `size` bounds the events.
        self._queue: asyncio.Queue[PbxEvent | None] = asyncio.Queue()
        self._size = size
        self._sequence = 0
        self.dropped = 0

    def put(self, event: PbxEvent) -> None:
        """Add an event with the next sequence number."""
        self._sequence += 1
        event = replace(event, sequence=self._sequence)
        if self._queue.qsize() >= self._size:
            # The consumer is behind: drop the oldest; the newest state matters most.
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    def close(self) -> None:
        """End the iteration of `events()` once the buffered events are read."""
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[PbxEvent]:
        """The events in order, until `close()`."""
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event
