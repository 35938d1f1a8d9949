"""The WebSocket stream: snapshot then changes, auth, filters, and slow clients dropped."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.websockets import WebSocketDisconnect

from m365pbx.core.presence import LineState
from m365pbx.pbx.api import MemoryApiKeyChecker, MemoryPresenceView, api_router
from m365pbx.pbx.api.stream import ChangeFanout

from .conftest import ALICE, BOB, Keys
from .wsclient import Closed, InProcessWebSocket

STREAM = "/api/v1/stream"


def socket(app: FastAPI, key: str | None = None, **query: str) -> InProcessWebSocket:
    if key is not None:
        query["key"] = key
    return InProcessWebSocket(app, STREAM, query=query)


async def test_snapshot_then_each_change(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    ws = socket(app, keys.read)
    await ws.connect()
    snapshot = await ws.receive_json()
    assert snapshot["type"] == "snapshot"
    assert [p["key"] for p in snapshot["people"]] == ["carol", "alice", "bob"]
    assert snapshot["people"][1]["pbx"] == {"presence": "busy", "note": "Teams: in a call"}
    view.update("office", "alice", line_state=LineState.RINGING)
    view.update("office", "bob", line_state=LineState.IDLE)
    first, second = await ws.receive_json(), await ws.receive_json()
    assert first["type"] == second["type"] == "change"
    assert (first["person"]["key"], first["person"]["line_state"]) == ("alice", "ringing")
    assert (second["person"]["key"], second["person"]["line_state"]) == ("bob", "idle")
    await ws.disconnect()
    assert view.subscribers == 0  # the pump stopped with the last client


async def test_the_bearer_header_works_too(app: FastAPI, keys: Keys) -> None:
    ws = InProcessWebSocket(app, STREAM, headers=keys.bearer(keys.both))
    await ws.connect()
    assert (await ws.receive_json())["type"] == "snapshot"
    await ws.disconnect()


async def test_the_connection_filter_applies_to_snapshot_and_changes(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    ws = socket(app, keys.read, connection="branch")
    await ws.connect()
    assert [p["key"] for p in (await ws.receive_json())["people"]] == ["carol"]
    view.update("office", "alice", line_state=LineState.RINGING)
    view.update("branch", "carol", display_name="Carol Cook")
    change = await ws.receive_json()
    assert change["person"]["display_name"] == "Carol Cook"
    await ws.disconnect()


@pytest.mark.parametrize(
    ("which", "reason"),
    [
        (None, "missing API key: use ?key= or Authorization: Bearer"),
        ("wrong", "the API key is not valid"),
        ("revoked", "the API key of client 'old' was revoked"),
        ("write", "client 'pbx' lacks the 'read' scope this request needs"),
    ],
)
async def test_refused_keys_close_with_1008_and_a_reason(
    app: FastAPI, keys: Keys, view: MemoryPresenceView, which: str | None, reason: str
) -> None:
    key = {"wrong": "m365pbx_" + "x" * 43, "revoked": keys.revoked, "write": keys.write,
           None: None}[which]
    ws = socket(app, key)
    await ws.connect()
    closed = await ws.closed()
    assert (closed.code, closed.reason) == (1008, reason)
    assert ws.frames_sent == 0
    await ws.finished()
    assert view.subscribers == 0


async def test_a_slow_client_is_dropped_without_holding_up_a_fast_one(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    fast, slow = socket(app, keys.read), socket(app, keys.read)
    for ws in (fast, slow):
        await ws.connect()
        await ws.receive_json()  # snapshot
    slow.stall()
    for n in range(20):  # the queue holds 4
        view.update("office", "alice", display_name=f"Alice {n}")
        change = await fast.receive_json(within=1)
        assert change["person"]["display_name"] == f"Alice {n}"
    assert slow.stalled.is_set()
    slow.resume()  # it reads again, and finds it was closed
    closed = await slow.closed()
    assert closed.code == 1013
    assert "too slow" in closed.reason
    await slow.finished()
    view.update("office", "bob", display_name="Bob again")
    assert (await fast.receive_json())["person"]["display_name"] == "Bob again"
    await fast.disconnect()


async def test_a_client_that_never_reads_again_is_let_go(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    dead = socket(app, keys.read)
    await dead.connect()
    await dead.receive_json()
    dead.stall()
    for n in range(10):
        view.update("office", "alice", display_name=f"Alice {n}")
        await asyncio.sleep(0)
    # Its close frame cannot go out either; the handler gives up after close_timeout.
    await dead.finished(within=2)
    assert view.subscribers == 0


async def test_a_client_that_goes_away_is_forgotten(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    ws = socket(app, keys.read)
    await ws.connect()
    await ws.receive_json()
    await ws.disconnect()
    view.update("office", "alice", display_name="nobody listens")
    assert view.subscribers == 0


async def test_clients_are_closed_with_1001_when_the_view_ends(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    ws = socket(app, keys.read)
    await ws.connect()
    await ws.receive_json()
    view.close()
    closed = await ws.closed()
    assert closed.code == 1001
    await ws.finished()


async def test_messages_from_the_client_are_ignored(
    app: FastAPI, keys: Keys, view: MemoryPresenceView
) -> None:
    ws = socket(app, keys.read)
    await ws.connect()
    await ws.receive_json()
    await ws._to_app.put({"type": "websocket.receive", "text": "hello"})
    view.update("office", "bob", display_name="Bob B")
    assert (await ws.receive_json())["person"]["display_name"] == "Bob B"
    await ws.disconnect()


async def test_the_fanout_subscribes_before_the_snapshot() -> None:
    # A change published between subscribe() and the snapshot is not lost.
    view = MemoryPresenceView([ALICE])
    fanout = ChangeFanout(view, queue_size=8)
    client = fanout.subscribe()
    view.update("office", "alice", line_state=LineState.HELD)
    change = await asyncio.wait_for(client.queue.get(), 10)
    assert change.line_state is LineState.HELD
    fanout.unsubscribe(client)


def starlette_client(app: FastAPI) -> Any:
    """Starlette's TestClient (its module warns that it will move to httpx2)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # StarletteDeprecationWarning is a UserWarning
        from fastapi.testclient import TestClient
    return TestClient(app)


def test_starlettes_test_client_sees_snapshot_and_changes() -> None:
    view = MemoryPresenceView([ALICE, BOB])
    checker = MemoryApiKeyChecker()
    key = checker.add("board")
    app = FastAPI()
    app.include_router(api_router(view, {}, checker))
    with starlette_client(app) as client, client.websocket_connect(f"{STREAM}?key={key}") as ws:
        assert len(ws.receive_json()["people"]) == 2
        assert client.portal is not None
        client.portal.call(lambda: view.update("office", "bob", line_state=LineState.HELD))
        assert ws.receive_json()["person"]["line_state"] == "held"


def test_starlettes_test_client_sees_the_1008() -> None:
    app = FastAPI()
    app.include_router(api_router(MemoryPresenceView(), {}, MemoryApiKeyChecker()))
    with starlette_client(app) as client, client.websocket_connect(STREAM) as ws, \
            pytest.raises(WebSocketDisconnect) as caught:
        ws.receive_json()
    assert caught.value.code == 1008


def test_closed_is_an_exception() -> None:
    assert str(Closed(1013, "x")) == "closed 1013: x"
