"""People doing things: clicking in Teams, joining meetings, taking calls on the PBX."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import LineStateEvent, PbxPresenceEvent, PbxUser

TEAMS_CHOICES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("sets Busy in Teams", {"preferred": {"availability": "Busy", "activity": "Busy"}}),
    ("sets Do not disturb in Teams",
     {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}),
    ("sets Be right back in Teams",
     {"preferred": {"availability": "BeRightBack", "activity": "BeRightBack"}}),
    ("resets their Teams status", {"preferred": None}),
    ("joins a Teams meeting", {"availability": "Busy", "activity": "InAMeeting"}),
    ("leaves the Teams meeting", {"availability": "Available", "activity": "Available"}),
)
# Notes people type on their phone; the demo sends them to Teams as the status message.
_NOTES = {
    PbxPresence.DND: ["", "Workshop until 4 pm", "Focus time"],
    PbxPresence.AWAY: ["", "At lunch", "Back tomorrow"],
}


@dataclass(frozen=True)
class Person:
    """A demo person: their PBX user and their Teams sign-in name."""

    pbx_user: PbxUser
    upn: str

    @property
    def name(self) -> str:
        """The long name."""
        return self.pbx_user.value("cn") or self.pbx_user.key


TeamsShows = Callable[[Person], Awaitable[str | None]]
"""What Teams shows for a person now, in words (None: not known)."""
# PBX → Teams writes are batched for up to a second: look a little later.
TEAMS_LOOK_AFTER_S = 2.0


class Activity:
    """Makes one random person do one thing every `interval` seconds."""

    def __init__(self, people: Sequence[Person], connection: ApiConnection, sim_url: str,
                 http: httpx.AsyncClient, say: Callable[[str], None], *,
                 interval: float = 2.0, seed: int | None = None,
                 teams_shows: TeamsShows | None = None) -> None:
        self.people = list(people)
        self.connection = connection
        self.sim_url = sim_url
        self.http = http
        self.say = say
        self.interval = interval
        self.rng = random.Random(seed)  # noqa: S311 - a demo, not cryptography
        self._calls: set[str] = set()
        self._sequence = 0
        self.teams_shows = teams_shows
        self._pending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Act until cancelled; what is still pending (a look at Teams, a hang-up) ends too."""
        try:
            while True:
                await asyncio.sleep(self.interval * self.rng.uniform(0.5, 1.5))
                person = self.rng.choice(self.people)
                choice = self.rng.random()
                if choice < 0.3:
                    await self._call(person)
                elif choice < 0.4:
                    self._pbx_presence(person)
                else:
                    await self._teams(person)
        finally:
            # Left running, a look at Teams outlives the simulator at Ctrl-C and prints
            # "Teams could not be read ... ConnectError" after "demo stopped".
            for task in list(self._pending):
                task.cancel()

    async def _teams(self, person: Person) -> None:
        what, body = self.rng.choice(TEAMS_CHOICES)
        tenant = person.upn.rpartition("@")[2]
        answer = await self.http.post(
            f"{self.sim_url}/_sim/tenants/{tenant}/users/{person.upn}/teams", json=body)
        if answer.status_code == 200:
            self.say(f"{person.name} {what}")
        else:
            self.say(f"(the simulator refused to let {person.name} act: {answer.status_code})")

    async def _call(self, person: Person) -> None:
        key = person.pbx_user.key
        if key in self._calls:
            return
        self._calls.add(key)
        self._line(key, LineState.RINGING)
        self._line(key, LineState.ON_THE_PHONE)
        self.say(f"{person.name} picks up a call on the PBX")
        self._tell_teams(person)
        duration = self.rng.uniform(8, 40)

        async def hang_up() -> None:
            await asyncio.sleep(duration)
            self._line(key, LineState.IDLE)
            self._calls.discard(key)
            self.say(f"{person.name} hangs up after {duration:.0f} s")
            self._tell_teams(person)

        task = asyncio.get_running_loop().create_task(hang_up())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _pbx_presence(self, person: Person) -> None:
        presence = self.rng.choice([PbxPresence.DND, PbxPresence.AWAY, PbxPresence.ONLINE])
        note = "" if presence is PbxPresence.ONLINE else self.rng.choice(_NOTES[presence])
        self._sequence += 1
        self.connection.submit([PbxPresenceEvent(person.pbx_user.key, presence,
                                                 datetime.now(UTC), note,
                                                 sequence=self._sequence)])
        told = f" with the note {note!r}" if note else ""
        self.say(f"{person.name} sets {presence.value} on their phone{told}")
        self._tell_teams(person)

    def _tell_teams(self, person: Person) -> None:
        """Say what Teams shows for `person` once the PBX's change had time to arrive."""
        if self.teams_shows is None:
            return
        teams_shows = self.teams_shows

        async def look() -> None:
            await asyncio.sleep(TEAMS_LOOK_AFTER_S)
            try:
                shown = await teams_shows(person)
            except Exception as exc:  # a demo line, not a reason to stop the demo
                self.say(f"    (Teams could not be read for {person.name}: {exc})")
                return
            if shown is not None:
                self.say(f"    Teams now shows {person.name}: {shown}")

        task = asyncio.get_running_loop().create_task(look())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _line(self, key: str, state: LineState) -> None:
        self._sequence += 1
        self.connection.submit([LineStateEvent(key, state, datetime.now(UTC),
                                               sequence=self._sequence)])
