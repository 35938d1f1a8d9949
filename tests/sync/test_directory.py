"""Directory sync: matching into people; a failed or empty fetch never replaces a good one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from m365pbx.core.matching import MatchOptions, MatchResult, Rule
from m365pbx.graph.errors import Unavailable
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.service.tenant import users_file_reader
from m365pbx.sync.directory import (
    ConnectionDirectory,
    DirectorySync,
    StoredPerson,
    teams_user_properties,
)
from m365pbx.sync.people import Person
from m365sim.clock import VirtualClock

TEAMS = [
    {"id": "u-anna", "displayName": "Anna Schmidt", "mail": "anna@contoso.com"},
    {"id": "u-ben", "displayName": "Ben Weber", "mail": "ben@contoso.com"},
]


class MemoryPeople:
    """PeopleStore in memory: ids in order of first appearance."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], int] = {}

    async def replace(self, connection: str, result: MatchResult,
                      teams_users: Mapping[str, Mapping[str, Any]]) -> list[StoredPerson]:
        people = []
        for match in result.matched:
            pid = self.ids.setdefault((match.pbx, match.teams), len(self.ids) + 1)
            people.append(StoredPerson(pid, match.pbx, match.teams,
                                       str(teams_users[match.teams]["displayName"])))
        return people


def make_sync(fetch: Any, directory: ConnectionDirectory) -> tuple[DirectorySync, list[Person]]:
    seen: list[Person] = []

    def on_people(people: list[Person]) -> None:
        seen[:] = people

    sync = DirectorySync("contoso", fetch, [directory], MemoryPeople(), on_people, VirtualClock())
    return sync, seen


async def test_pbx_users_are_matched_and_watched() -> None:
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"}),
                       PbxUser("ben", {"cn": "Ben Weber"})])

    async def fetch() -> list[dict[str, Any]]:
        return TEAMS

    sync, people = make_sync(fetch, ConnectionDirectory("pbx", pbx, MatchOptions()))
    assert await sync.sync_once()
    assert sorted((p.key, p.teams_user_id) for p in people) == [("anna", "u-anna"),
                                                                 ("ben", "u-ben")]
    assert sorted(u.key for u in pbx.watched()) == ["anna", "ben"]


async def test_a_failed_or_empty_fetch_keeps_the_good_directory() -> None:
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])
    answers: list[Any] = [TEAMS, Unavailable("Graph is down"), []]

    async def fetch() -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    sync, people = make_sync(fetch, ConnectionDirectory("pbx", pbx, MatchOptions()))
    assert await sync.sync_once()
    assert [p.key for p in people] == ["anna"]
    assert not await sync.sync_once()
    assert "Graph is down" in (sync.status.last_error or "")
    assert not await sync.sync_once()
    assert "returned no users" in (sync.status.last_error or "")
    assert [p.key for p in people] == ["anna"]


async def test_a_pbx_without_a_user_list_reads_its_users_file(tmp_path: Path) -> None:
    export = tmp_path / "pbx.csv"
    export.write_text("h323;cn;extension\nanna;Anna Schmidt;201\nben;Ben Weber;202\n")

    async def fetch() -> list[dict[str, Any]]:
        return TEAMS

    pbx = ApiConnection("sip-like")
    directory = ConnectionDirectory("sip-like", pbx, MatchOptions(),
                                    source=users_file_reader(export))
    sync, people = make_sync(fetch, directory)
    assert await sync.sync_once()
    assert sorted(p.key for p in people) == ["anna", "ben"]
    assert people[0].pbx_user.value("extension") in {"201", "202"}
    export.write_text("not;a;users;file\n")
    assert not await sync.sync_once()  # a broken export keeps the previous people
    assert "sip-like" in (sync.status.last_error or "")
    assert len(people) == 2


def test_the_sync_keeps_what_matching_and_the_people_need_of_teams_users() -> None:
    by_name = ConnectionDirectory("a", ApiConnection("a"), MatchOptions())
    by_sip = ConnectionDirectory("b", ApiConnection("b"), MatchOptions(
        rules=(Rule("h323", "mailNickname"), Rule("sip", "sipProxyAddresses"))))
    assert teams_user_properties([by_name, by_sip]) == {
        "id", "displayName", "userPrincipalName", "accountEnabled", "assignedPlans", "memberOf",
        "mailNickname", "proxyAddresses",
    }


async def test_the_same_people_again_are_not_announced_again() -> None:
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])
    announced: list[list[str]] = []

    async def fetch() -> list[dict[str, Any]]:
        return TEAMS

    sync = DirectorySync("contoso", fetch, [ConnectionDirectory("pbx", pbx, MatchOptions())],
                         MemoryPeople(), lambda people: announced.append([p.key for p in people]),
                         VirtualClock())
    assert await sync.sync_once()
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])  # the PBX re-sends them
    assert await sync.sync_once()
    assert announced == [["anna"]]
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"}),
                       PbxUser("ben", {"cn": "Ben Weber"})])
    assert await sync.sync_once()
    assert announced == [["anna"], ["anna", "ben"]]
