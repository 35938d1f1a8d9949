"""One summary line after each directory sync: people, matched, unmatched, ambiguous, seconds."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from m365pbx.core.matching import MatchOptions
from m365pbx.graph.errors import Unavailable
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.directory import ConnectionDirectory
from tests.sync.test_directory import TEAMS, make_sync

PBX = [PbxUser("anna", {"cn": "Anna Schmidt"}), PbxUser("ben", {"cn": "Ben Weber"}),
       PbxUser("carl", {"cn": "Carl Clark"}),
       PbxUser("dora", {"cn": "Dora Diaz"}), PbxUser("dora2", {"cn": "Dora Diaz"})]
TEAMS_MORE = [*TEAMS, {"id": "u-dora", "displayName": "Dora Diaz"},
              {"id": "u-eve", "displayName": "Eve Early"}]


def summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The summary records logged so far."""
    return [r for r in caplog.records if getattr(r, "directory_sync", None) == "summary"]


async def test_each_sync_logs_one_summary_with_its_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="m365pbx.sync.directory")
    pbx = ApiConnection("pbx")
    pbx.replace_users(PBX)
    answers: list[Any] = [TEAMS_MORE, Unavailable("Graph is down")]

    async def fetch() -> list[dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    sync, _ = make_sync(fetch, ConnectionDirectory("pbx", pbx, MatchOptions()))
    assert await sync.sync_once()
    (first,) = summaries(caplog)
    fields = {name: vars(first)[name] for name in (
        "tenant", "ok", "people", "matched", "unmatched_pbx", "unmatched_teams", "ambiguous",
        "teams_users", "pbx_users")}
    # Dora's two PBX entries claim one Teams user, who goes to neither (ambiguous, and
    # unmatched on the Teams side); Carl and Eve have no match.
    assert fields == {"tenant": "contoso", "ok": True, "people": 2, "matched": 2,
                      "unmatched_pbx": 1, "unmatched_teams": 2, "ambiguous": 2,
                      "teams_users": 4, "pbx_users": 5}
    assert 0 <= vars(first)["seconds"] < 60
    assert first.getMessage().startswith(
        "directory sync of contoso: 2 people (2 matched, 1 PBX and 2 Teams users unmatched, "
        "2 ambiguous) in ")

    assert not await sync.sync_once()
    second = summaries(caplog)[1]
    # The previous directory is kept.
    assert vars(second)["ok"] is False and vars(second)["people"] == 2
    assert "cannot read users from Microsoft 365" in second.getMessage()


async def test_a_teams_user_counts_as_unmatched_only_if_no_connection_matched_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="m365pbx.sync.directory")
    front, back = ApiConnection("front"), ApiConnection("back")
    front.replace_users([PbxUser("anna", {"cn": "Anna Schmidt"})])
    back.replace_users([PbxUser("ben", {"cn": "Ben Weber"})])

    async def fetch() -> list[dict[str, Any]]:
        return [*TEAMS, {"id": "u-eve", "displayName": "Eve Early"}]

    sync, _ = make_sync(fetch, ConnectionDirectory("front", front, MatchOptions()))
    sync.connections.append(ConnectionDirectory("back", back, MatchOptions()))
    assert await sync.sync_once()
    (summary,) = summaries(caplog)
    # Each connection alone leaves two Teams users over; together only Eve is nobody's.
    assert vars(summary)["matched"] == 2 and vars(summary)["unmatched_teams"] == 1
