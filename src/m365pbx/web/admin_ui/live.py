"""The live view: each presence change pushed to the admin's browser over a WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import WebSocket, WebSocketDisconnect

from m365pbx.pbx.api.view import PersonPresence

# Policy violation: no session, or a page of another site opened the socket.
CLOSE_REFUSED = 1008


def same_origin(websocket: WebSocket) -> bool:
    """Whether the socket was opened by a page of this server (browsers send Origin)."""
    origin = websocket.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc == websocket.headers.get("host")


def change_row(person: PersonPresence, now: datetime) -> dict[str, Any]:
    """One change as the live view shows it (plain text values only; the page escapes)."""
    teams = person.teams
    shown = ("" if teams is None or teams.availability is None
             else f"{teams.availability} / {teams.activity}")
    return {"at": f"{now:%H:%M:%S}", "name": person.display_name or person.key,
            "connection": person.connection, "key": person.key, "teams": shown,
            "pbx": "" if person.pbx is None else str(person.pbx.presence),
            "note": "" if person.pbx is None else person.pbx.note,
            "line": "" if person.line_state is None else str(person.line_state)}


async def stream_changes(websocket: WebSocket, changes: AsyncIterator[PersonPresence],
                         now: Any) -> None:
    """Send each change until the browser goes away or the view ends (`now()`: the time)."""

    async def send() -> None:
        async for person in changes:
            await websocket.send_json(change_row(person, now()))

    async def until_closed() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    tasks = {asyncio.create_task(send()), asyncio.create_task(until_closed())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
        close = getattr(changes, "aclose", None)
        if close is not None:
            await close()
