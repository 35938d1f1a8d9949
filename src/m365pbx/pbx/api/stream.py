"""The WebSocket stream: a snapshot, then every change, with slow clients cut off.

One pump reads the view's changes and offers each to every client's bounded queue without
waiting. A client whose queue is full has fallen `queue_size` changes behind: it is closed
with code 1013 (Try Again Later) and should reconnect, which brings a fresh snapshot. So
no client ever waits for another, and a stuck client costs at most its queue's memory.
Authentication failures close with 1008 (Policy Violation) and say why in the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

from m365pbx.pbx.api.keys import ApiKeyChecker, ApiKeyError, Scope
from m365pbx.pbx.api.schemas import ChangeMessage, PersonOut, SnapshotMessage
from m365pbx.pbx.api.view import PersonPresence, PresenceView

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
DEFAULT_QUEUE_SIZE = 256
"""Changes a client may fall behind before it is dropped."""
DEFAULT_CLOSE_TIMEOUT = 2.0
"""Seconds to wait for a close frame to go out to a client that stopped reading."""
_MAX_REASON_BYTES = 123  # RFC 6455 5.5: control frame payload ≤ 125 bytes, 2 for the code


class StreamClient:
    """One connected client: its filter, its bounded queue, and why it must stop."""

    def __init__(self, connection: str | None, queue_size: int) -> None:
        self.connection = connection
        self.queue: asyncio.Queue[PersonPresence] = asyncio.Queue(maxsize=queue_size)
        self.stopped = asyncio.Event()
        self.close_code = CLOSE_GOING_AWAY
        self.close_reason = ""

    def wants(self, person: PersonPresence) -> bool:
        """Whether this client follows the person's connection."""
        return self.connection is None or person.connection == self.connection

    def offer(self, person: PersonPresence) -> bool:
        """Queue a change without waiting; on overflow mark the client for closing."""
        if self.stopped.is_set():
            return False
        try:
            self.queue.put_nowait(person)
        except asyncio.QueueFull:
            self.stop(
                CLOSE_TRY_AGAIN_LATER,
                f"too slow: more than {self.queue.maxsize} changes behind; reconnect",
            )
            return False
        return True

    def stop(self, code: int, reason: str) -> None:
        """Ask the client's handler to close with `code` and `reason`."""
        if not self.stopped.is_set():
            self.close_code, self.close_reason = code, reason
            self.stopped.set()


class ChangeFanout:
    """Reads the view's changes once and hands them to every client that wants them."""

    def __init__(self, view: PresenceView, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.view = view
        self.queue_size = queue_size
        self._clients: set[StreamClient] = set()
        self._pump: asyncio.Task[None] | None = None

    @property
    def clients(self) -> int:
        """How many clients are connected."""
        return len(self._clients)

    def subscribe(self, connection: str | None = None) -> StreamClient:
        """Register a client; it gets every change published from now on."""
        client = StreamClient(connection, self.queue_size)
        self._clients.add(client)
        if self._pump is None or self._pump.done():
            # changes() subscribes when it returns, so the caller's snapshot misses nothing.
            self._pump = asyncio.create_task(self._run(self.view.changes()))
        return client

    def unsubscribe(self, client: StreamClient) -> None:
        """Forget a client; the pump stops with the last one."""
        self._clients.discard(client)
        if not self._clients and self._pump is not None:
            self._pump.cancel()
            self._pump = None

    async def _run(self, changes: AsyncIterator[PersonPresence]) -> None:
        try:
            async for person in changes:
                for client in list(self._clients):
                    if client.wants(person) and not client.offer(person):
                        self._clients.discard(client)
            for client in list(self._clients):
                client.stop(CLOSE_GOING_AWAY, "m365pbx is shutting down")
        finally:
            close: Callable[[], object] | None = getattr(changes, "aclose", None)
            if close is not None:
                result = close()
                if inspect.isawaitable(result):
                    await result


def _reason(text: str) -> str:
    encoded = text.encode()[:_MAX_REASON_BYTES]
    return encoded.decode(errors="ignore")


async def _close(websocket: WebSocket, code: int, reason: str, within: float) -> None:
    # A client that stopped reading may not take the close frame either; the handler
    # returns regardless, and the server then drops the connection.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(within):
            await websocket.close(code, _reason(reason))


async def _send_all(websocket: WebSocket, client: StreamClient, view: PresenceView) -> None:
    people = [PersonOut.of(p) for p in view.people() if client.wants(p)]
    await websocket.send_json(SnapshotMessage(people=people).model_dump(mode="json"))
    while True:
        person = await client.queue.get()
        message = ChangeMessage(person=PersonOut.of(person))
        await websocket.send_json(message.model_dump(mode="json"))


async def _read_until_disconnect(websocket: WebSocket) -> None:
    # Messages from the client are ignored; reading is how a disconnect is noticed.
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def serve_stream(
    websocket: WebSocket,
    *,
    fanout: ChangeFanout,
    keys: ApiKeyChecker,
    key: str | None,
    connection: str | None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> None:
    """Authenticate, then send the snapshot and the changes until either side stops."""
    await websocket.accept()
    if key is None:
        reason = "missing API key: use ?key= or Authorization: Bearer"
        await _close(websocket, CLOSE_POLICY_VIOLATION, reason, close_timeout)
        return
    try:
        identity = await keys.check(key, Scope.READ)
    except ApiKeyError as exc:
        await _close(websocket, CLOSE_POLICY_VIOLATION, str(exc), close_timeout)
        return
    client = fanout.subscribe(connection)
    sender = asyncio.create_task(_send_all(websocket, client, fanout.view))
    reader = asyncio.create_task(_read_until_disconnect(websocket))
    stopped = asyncio.create_task(client.stopped.wait())
    tasks = (sender, reader, stopped)
    for task in tasks:
        task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        fanout.unsubscribe(client)
        for task in tasks:
            task.cancel()
        # asyncio.wait, not gather: if this handler is being cancelled, the CancelledError
        # that comes out must be the canceller's own (anyio's cancel scopes recognise
        # theirs by its message; gather would raise a new one and the scope would not).
        await asyncio.wait(tasks)
    for task in (sender, reader):
        error = None if task.cancelled() else task.exception()
        if error is not None and not _is_disconnect(error):
            log.warning("stream of API client %r ended: %s", identity.name, error)
    if stopped in done:
        if client.close_code == CLOSE_TRY_AGAIN_LATER:
            log.warning("dropped slow stream client %r: %s", identity.name, client.close_reason)
        await _close(websocket, client.close_code, client.close_reason, close_timeout)


def _retrieve(task: asyncio.Task[object]) -> None:
    # Marks a task's exception as seen, so none is reported as "never retrieved".
    if not task.cancelled():
        task.exception()


def _is_disconnect(error: BaseException) -> bool:
    return isinstance(error, WebSocketDisconnect | OSError | asyncio.CancelledError)
