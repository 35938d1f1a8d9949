"""The in-memory PresenceView: people in order, changes published once each, close."""

from __future__ import annotations

from m365pbx.core.presence import LineState
from m365pbx.pbx.api.view import MemoryPresenceView, PersonPresence, PresenceView

from .conftest import ALICE, BOB, CAROL_BRANCH


def test_people_are_ordered_by_connection_then_key() -> None:
    view = MemoryPresenceView([BOB, ALICE, CAROL_BRANCH])
    assert isinstance(view, PresenceView)
    assert [(p.connection, p.key) for p in view.people()] == [
        ("branch", "carol"), ("office", "alice"), ("office", "bob")
    ]


async def test_changes_sees_what_is_published_after_the_call_not_before() -> None:
    view = MemoryPresenceView([ALICE])
    view.update("office", "alice", line_state=LineState.RINGING)  # before: not seen
    changes = view.changes()
    assert view.put(ALICE.replace(line_state=LineState.ON_THE_PHONE))
    assert not view.put(ALICE.replace(line_state=LineState.ON_THE_PHONE))  # no change
    view.update("office", "alice", line_state=LineState.IDLE)
    first = await anext(changes)
    second = await anext(changes)
    assert (first.line_state, second.line_state) == (LineState.ON_THE_PHONE, LineState.IDLE)


async def test_every_subscriber_gets_every_change_and_close_ends_them() -> None:
    view = MemoryPresenceView()
    feeds = [view.changes(), view.changes()]
    view.put(PersonPresence("dave", "office"))
    view.close()
    for feed in feeds:
        assert [p.key async for p in feed] == ["dave"]
    assert [p async for p in view.changes()] == []  # after close: ends at once


async def test_a_closed_iterator_unsubscribes() -> None:
    view = MemoryPresenceView()
    feed = view.changes()
    assert view.subscribers == 1
    await feed.aclose()  # type: ignore[attr-defined]
    assert view.subscribers == 0


def test_remove_forgets_a_person() -> None:
    view = MemoryPresenceView([ALICE])
    assert view.remove("office", "alice")
    assert not view.remove("office", "alice")
    assert view.get("office", "alice") is None
