"""A node that cannot tell yet whom its tenant's holder follows answers 503 "send again",
never "unknown-key" (docs/cluster.md "The presence API on every node"): a node just
started, or one that has just taken the tenant over, would otherwise refuse the people it
is about to follow, and a PBX takes such a refusal for good (found by the chaos soak,
tests/e2e/test_soak.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from m365pbx.pbx.api import ApiConnection, MemoryApiKeyChecker, MemoryPresenceView, api_router
from m365pbx.service.api_handoff import ApiHandoff, ApiTenant, ConnectionRelay
from m365pbx.service.leases import Ownership
from m365pbx.store import SecretBox, Store, generate_key, upgrade_database
from tests.pbx.api.conftest import FixedClock


class Tenant:
    """Where the tenant is run, and what this node has learnt about it."""

    def __init__(self) -> None:
        self.here = False  # this node runs it
        self.matched = False  # this node (running it) has matched its people
        self.read = False  # this node (not running it) has read whom the holder follows


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm365pbx.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    yield store
    await store.close()


async def test_events_wait_for_the_node_to_know_whom_the_holder_follows(store: Store) -> None:
    clock = FixedClock()
    office = ApiConnection("office", clock=clock, event_buffer=50)
    await office.start()
    state = Tenant()
    tenant = ApiTenant("contoso", Ownership(store, "tenant/contoso"), runs=lambda: state.here,
                       ready=lambda: state.here and state.matched, connections={"office": office})
    handoff = ApiHandoff(store, "node-b", clock, lifetime=120, tenants=lambda: [tenant])
    office.relay = ConnectionRelay(handoff, tenant, "office",
                                   watches=lambda _connection, key: key == "alice",
                                   follows=lambda _tenant: state.read)
    keys = MemoryApiKeyChecker()
    write = keys.add("pbx", ["write"])
    app = FastAPI()
    app.include_router(api_router(MemoryPresenceView([]), {"office": office}, keys, clock=clock))
    events = [{"key": "alice", "line_state": "on-the-phone"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app),
                                 base_url="http://m365pbx") as http:
        async def post() -> httpx.Response:
            return await http.post("/api/v1/connections/office/events", json=events,
                                   headers={"Authorization": f"Bearer {write}"})

        # Another node runs the tenant; this one has not read its people yet.
        answer = await post()
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert "has not read yet whom the node running tenant 'contoso' follows" in answer.text
        async with store.transaction() as tx:
            assert await tx.api_handoffs.backlog() == {}  # nothing handed on

        state.read = True
        answer = await post()
        assert answer.status_code == 202 and answer.json()["accepted"] == 1
        async with store.transaction() as tx:
            assert await tx.api_handoffs.backlog() == {"contoso": 1}

        # This node has just taken the tenant over and not matched its people yet.
        state.here = True
        answer = await post()
        assert answer.status_code == 503, answer.text
        assert "has just taken tenant 'contoso' over" in answer.text
        state.matched = True
        await office.watch([])
        answer = await post()
        assert answer.status_code == 202
        assert answer.json()["items"][0]["code"] == "unknown-key"  # now it knows: not followed
