"""Fixtures for the presence API: a view with people, one API connection, keys, an app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    PbxState,
    TeamsPresence,
)
from m365pbx.pbx.api import (
    ApiConnection,
    MemoryApiKeyChecker,
    MemoryPresenceView,
    PersonPresence,
    TeamsSession,
    TeamsSide,
    api_router,
)
from m365pbx.pbx.base import PbxUser

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class FixedClock:
    """A clock that stands still unless moved."""

    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        return None


ALICE = PersonPresence(
    key="alice",
    connection="office",
    person_id=1,
    display_name="Alice Archer",
    teams_user_id="aaaa-1111",
    teams=TeamsSide(Availability.BUSY, Activity.IN_A_CALL, "on a call", NOW),
    pbx=PbxState(PbxPresence.BUSY, "Teams: in a call"),
    line_state=LineState.IDLE,
    pbx_set_by_person=None,
    session=None,
)
BOB = PersonPresence(
    key="bob",
    connection="office",
    person_id=2,
    display_name="Bob Baker",
    teams_user_id="bbbb-2222",
    teams=TeamsSide(Availability.AVAILABLE, Activity.AVAILABLE, None, NOW),
    line_state=LineState.ON_THE_PHONE,
    pbx_set_by_person=PbxState(PbxPresence.DND, "do not disturb"),
    session=TeamsSession(TeamsPresence(Availability.BUSY, Activity.IN_A_CALL), NOW),
)
CAROL_BRANCH = PersonPresence(key="carol", connection="branch", person_id=3)
ALICE_BRANCH = PersonPresence(key="alice", connection="branch", person_id=4, display_name="Alice B")


@dataclass
class Keys:
    """The keys of the test clients."""

    checker: MemoryApiKeyChecker
    read: str
    write: str
    both: str
    revoked: str

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def view() -> MemoryPresenceView:
    return MemoryPresenceView([ALICE, BOB, CAROL_BRANCH])


@pytest.fixture
async def office(clock: FixedClock) -> ApiConnection:
    connection = ApiConnection("office", clock=clock, event_buffer=50)
    await connection.start()
    await connection.watch([PbxUser("alice"), PbxUser("bob")])
    return connection


@pytest.fixture
def keys() -> Keys:
    checker = MemoryApiKeyChecker()
    keys = Keys(
        checker,
        read=checker.add("board", ["read"]),
        write=checker.add("pbx", ["write"]),
        both=checker.add("console", ["read", "write"]),
        revoked=checker.add("old", ["read", "write"]),
    )
    checker.revoke("old", NOW)
    return keys


@pytest.fixture
def app(
    view: MemoryPresenceView, office: ApiConnection, keys: Keys, clock: FixedClock
) -> FastAPI:
    app = FastAPI()
    app.include_router(
        api_router(view, {"office": office}, keys.checker, clock=clock, stream_queue_size=4,
                   close_timeout=0.2)
    )
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://m365pbx") as client:
        yield client
