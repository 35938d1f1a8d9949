"""Directory changes between full syncs: delta rounds folded into the people (issue 18/10)."""

from __future__ import annotations

from typing import Any

from m365pbx.core.matching import MatchOptions
from m365pbx.graph.errors import BadRequest, Unavailable
from m365pbx.graph.users import DeltaResult
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.directory import ConnectionDirectory, DirectorySync
from m365pbx.sync.directory_delta import DirectoryChanges
from m365sim.clock import VirtualClock
from tests.sync.test_directory import MemoryPeople

ANNA = {"id": "u-anna", "displayName": "Anna Schmidt", "accountEnabled": True}
BEN = {"id": "u-ben", "displayName": "Ben Weber", "accountEnabled": True}


class FakeGraph:
    """The Teams users and the delta answers a test hands out."""

    def __init__(self) -> None:
        self.users: list[dict[str, Any]] = [ANNA, BEN]
        self.answers: list[DeltaResult | Exception] = []
        self.links = 0
        self.asked: list[str] = []

    async def list_users(self) -> list[dict[str, Any]]:
        return [dict(u) for u in self.users]

    async def latest(self) -> str:
        self.links += 1
        return f"link-{self.links}"

    async def changes(self, link: str) -> DeltaResult:
        self.asked.append(link)
        answer = self.answers.pop(0) if self.answers else DeltaResult(delta_link=link)
        if isinstance(answer, Exception):
            raise answer
        return answer


def build(graph: FakeGraph) -> tuple[DirectorySync, DirectoryChanges, list[list[str]]]:
    pbx = ApiConnection("pbx")
    pbx.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"}),
                       PbxUser("ben", {"cn": "Ben Weber"})])
    announced: list[list[str]] = []
    clock = VirtualClock()
    sync = DirectorySync("contoso", graph.list_users,
                         [ConnectionDirectory("pbx", pbx, MatchOptions())], MemoryPeople(),
                         lambda people: announced.append(sorted(p.key for p in people)), clock,
                         keep_teams_users=True)
    changes = DirectoryChanges(sync, graph.latest, graph.changes, clock, interval=30)
    sync.fetch_teams_users = changes.full_read(sync.fetch_teams_users)
    return sync, changes, announced


async def test_a_round_before_the_first_full_read_does_nothing() -> None:
    graph = FakeGraph()
    _sync, changes, announced = build(graph)
    assert not await changes.round_once()
    assert graph.asked == [] and announced == []


async def test_the_full_read_takes_a_link_and_rounds_fold_changes_in() -> None:
    graph = FakeGraph()
    sync, changes, announced = build(graph)
    assert await sync.sync_once()
    assert changes.link == "link-1" and announced == [["anna", "ben"]]
    graph.answers = [DeltaResult(removed=["u-ben"], delta_link="link-2"),
                     DeltaResult(changed=[dict(BEN)], delta_link="link-3"),
                     DeltaResult(changed=[{**ANNA, "accountEnabled": False}],
                                 delta_link="link-4")]
    assert await changes.round_once()
    assert announced[-1] == ["anna"]
    assert await changes.round_once()
    assert announced[-1] == ["anna", "ben"]
    assert await changes.round_once()
    assert announced[-1] == ["ben"]
    assert graph.asked == ["link-1", "link-2", "link-3"]
    assert changes.link == "link-4"
    assert changes.status.rounds == 3 and changes.status.applied == 3


async def test_a_change_nothing_reads_is_not_announced() -> None:
    graph = FakeGraph()
    sync, changes, announced = build(graph)
    assert await sync.sync_once()
    graph.answers = [DeltaResult(changed=[dict(ANNA)], removed=["u-stranger"],
                                 delta_link="link-2")]
    assert not await changes.round_once()
    assert announced == [["anna", "ben"]]
    assert changes.link == "link-2" and changes.status.rounds == 1


async def test_a_link_graph_no_longer_serves_asks_for_a_full_sync() -> None:
    graph = FakeGraph()
    sync, changes, _announced = build(graph)
    assert await sync.sync_once()
    graph.answers = [BadRequest("Graph 410 resyncRequired: gone", code="resyncRequired",
                                status=410)]
    assert not await changes.round_once()
    assert changes.link is None
    assert "full sync runs now" in (changes.status.last_error or "")
    assert sync._now.is_set()  # the full sync was asked for
    assert await sync.sync_once()
    assert changes.link == "link-2"  # the full read took a new one
    assert await changes.round_once() is False and changes.status.last_error is None


async def test_a_failed_round_is_shown_and_clears_on_the_next_good_one() -> None:
    graph = FakeGraph()
    sync, changes, announced = build(graph)
    assert await sync.sync_once()
    graph.answers = [Unavailable("Graph 503: down"), DeltaResult(removed=["u-anna"],
                                                                 delta_link="link-2")]
    assert not await changes.round_once()
    assert "Graph 503" in (changes.status.last_error or "")
    assert changes.status.since is not None
    assert changes.link == "link-1"  # kept: the next round asks again from there
    assert await changes.round_once()
    assert announced[-1] == ["ben"]
    assert changes.status.last_error is None and changes.status.since is None


async def test_without_a_link_a_round_follows_from_now_on() -> None:
    graph = FakeGraph()
    sync, changes, _announced = build(graph)

    async def refuse() -> str:
        raise Unavailable("Graph 503: down")

    changes.latest_link = refuse
    assert await sync.sync_once()  # the full read works without a link
    assert changes.link is None and "cannot follow" in (changes.status.last_error or "")
    changes.latest_link = graph.latest
    assert not await changes.round_once()
    assert changes.link == "link-1" and changes.status.last_error is None
