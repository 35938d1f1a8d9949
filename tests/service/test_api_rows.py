"""What the presence API hands to and shares with other nodes reads back as it was written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    PbxState,
    TeamsPresence,
)
from m365pbx.pbx.api.view import PersonPresence, TeamsSession, TeamsSide
from m365pbx.pbx.base import LineStateEvent, PbxEvent, PbxPresenceEvent, PbxUser
from m365pbx.service.api_rows import (
    events_from,
    events_json,
    presence_from,
    presence_json,
    users_from,
    users_json,
)

AT = datetime(2026, 12, 7, 10, 15, 3, 250000, tzinfo=timezone(timedelta(hours=1)))


def test_events_keep_their_order_kind_time_zone_and_sequence() -> None:
    events: list[PbxEvent] = [
        LineStateEvent("anna", LineState.ON_THE_PHONE, AT, 42),
        PbxPresenceEvent("ben", PbxPresence.DND, AT, "in a workshop", 7),
        LineStateEvent("anna", LineState.IDLE, AT + timedelta(seconds=1)),
    ]
    assert events_from(events_json(events)) == events


def test_a_directory_keeps_every_field() -> None:
    users = [PbxUser("anna", {"cn": "Anna Schmidt", "extension": "201"}), PbxUser("ben")]
    assert users_from(users_json(users)) == users


@pytest.mark.parametrize("person", [
    PersonPresence(key="anna", connection="office"),
    PersonPresence(
        key="anna", connection="office", person_id=3, display_name="Anna Schmidt",
        teams_user_id="user-1",
        teams=TeamsSide(Availability.BUSY, Activity.IN_A_CALL, "on site", AT),
        pbx=PbxState(PbxPresence.ON_THE_PHONE, ""), line_state=LineState.ON_THE_PHONE,
        pbx_set_by_person=PbxState(PbxPresence.DND, "workshop"),
        session=TeamsSession(TeamsPresence(Availability.BUSY, Activity.IN_A_CALL),
                             datetime(2026, 12, 7, 10, 20, tzinfo=UTC))),
])
def test_a_shown_person_reads_back_as_shown(person: PersonPresence) -> None:
    assert presence_from("office", "anna", presence_json(person)) == person


def test_a_value_this_version_does_not_know_is_refused() -> None:
    body = presence_json(PersonPresence(key="anna", connection="office",
                                        line_state=LineState.HELD)).replace("held", "parked")
    with pytest.raises(ValueError):
        presence_from("office", "anna", body)
