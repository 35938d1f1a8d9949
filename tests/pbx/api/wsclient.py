"""A WebSocket client that drives an ASGI app in the test's own event loop.

Unlike Starlette's TestClient it can be slow on purpose: after `stall()`, every frame the
server sends (close frames too) waits until `resume()`, as a socket's send does when the
peer stops reading and the buffers are full.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

from starlette.types import ASGIApp, Message


class Closed(Exception):
    """The server closed the WebSocket."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class InProcessWebSocket:
    """One WebSocket connection to an ASGI app, in the caller's event loop."""

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        *,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.app = app
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "http_version": "1.1",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(query or {}).encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("m365pbx", 80),
            "subprotocols": [],
        }
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.stalled = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.frames_sent = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open the connection; raise Closed if the server refuses it."""
        async def run() -> None:
            await self.app(self.scope, self._receive, self._send)

        self._task = asyncio.create_task(run())
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next()
        if message["type"] == "websocket.close":
            raise Closed(message.get("code", 1000), message.get("reason", ""))
        assert message["type"] == "websocket.accept", message

    def stall(self) -> None:
        """Stop reading: the server's next data frame blocks until `resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """Read again."""
        self._flowing.set()

    async def receive_json(self, within: float = 2.0) -> Any:
        """The next JSON message; Closed if the server closed instead."""
        message = await asyncio.wait_for(self._next(), within)
        if message["type"] == "websocket.close":
            raise Closed(message.get("code", 1000), message.get("reason", ""))
        return json.loads(message["text"])

    async def closed(self, within: float = 2.0) -> Closed:
        """Read until the server closes; return the close (skipping data frames)."""
        async with asyncio.timeout(within):
            while True:
                message = await self._next()
                if message["type"] == "websocket.close":
                    return Closed(message.get("code", 1000), message.get("reason", ""))

    async def disconnect(self) -> None:
        """Go away as a client and wait for the server's handler to finish."""
        await self._to_app.put({"type": "websocket.disconnect", "code": 1000})
        await self.finished()

    async def finished(self, within: float = 2.0) -> None:
        """Wait for the server's handler to return."""
        assert self._task is not None
        await asyncio.wait_for(self._task, within)

    async def _next(self) -> Message:
        return await self._from_app.get()

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        if not self._flowing.is_set():
            self.stalled.set()
        await self._flowing.wait()
        if message["type"] == "websocket.send":
            self.frames_sent += 1
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason", "")
        await self._from_app.put(message)
