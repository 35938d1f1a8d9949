"""The demo's people stop with it: nothing they started speaks after Ctrl-C."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from m365pbx.demo import activity as activity_module
from m365pbx.demo.activity import Activity, Person
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser


async def test_a_pending_look_at_teams_ends_with_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(activity_module, "TEAMS_LOOK_AFTER_S", 0.3)
    lines: list[str] = []
    spoke = asyncio.Event()
    stopped = asyncio.Event()

    def say(line: str) -> None:
        lines.append(line)
        spoke.set()

    async def teams_shows(person: Person) -> str | None:
        if stopped.is_set():  # the simulator is gone once the demo stopped
            raise httpx.ConnectError("All connection attempts failed")
        return "Busy / InACall"

    person = Person(PbxUser("anna", {"cn": "Anna Meier"}), "anna@contoso.com")
    async with httpx.AsyncClient() as http:
        people = Activity([person], ApiConnection("switchboard"), "https://127.0.0.1:9", http,
                          say, interval=0.01, seed=1, teams_shows=teams_shows)
        running = asyncio.create_task(people.run())
        # Seed 1 makes the first act a PBX one (a call or a PBX presence), so a look at
        # Teams is pending when the demo stops.
        await asyncio.wait_for(spoke.wait(), timeout=10)
        assert "on the PBX" in lines[0] or "on their phone" in lines[0], lines
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        stopped.set()
        said = len(lines)
        await asyncio.sleep(0.6)  # past the look's delay: nothing more may be said
    assert lines[said:] == []
    assert not any("could not be read" in line for line in lines)
