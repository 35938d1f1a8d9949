"""The presence API's data as stored for other nodes (docs/cluster.md): events and user
directories handed to the node running their tenant, and people as that node shows them.

Plain JSON with the enums' values; what a node cannot read back (a newer version's field
values) raises ValueError, which the caller logs and counts.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

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


def _at(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def events_json(events: list[PbxEvent]) -> str:
    """The events as one JSON list, in order."""
    items: list[dict[str, Any]] = []
    for event in events:
        item: dict[str, Any] = {"key": event.key, "at": event.at.isoformat(),
                                "sequence": event.sequence}
        if isinstance(event, LineStateEvent):
            item["line_state"] = event.state.value
        else:
            item["presence"] = event.presence.value
            item["note"] = event.note
        items.append(item)
    return json.dumps(items)


def events_from(body: str) -> list[PbxEvent]:
    """The events of `events_json`, in order."""
    found: list[PbxEvent] = []
    for item in json.loads(body):
        at = datetime.fromisoformat(item["at"])
        if "line_state" in item:
            found.append(LineStateEvent(item["key"], LineState(item["line_state"]), at,
                                        item["sequence"]))
        else:
            found.append(PbxPresenceEvent(item["key"], PbxPresence(item["presence"]), at,
                                          item["note"], item["sequence"]))
    return found


def users_json(users: list[PbxUser]) -> str:
    """A directory as one JSON list."""
    return json.dumps([{"key": user.key, "fields": dict(user.fields)} for user in users])


def users_from(body: str) -> list[PbxUser]:
    """The directory of `users_json`."""
    return [PbxUser(item["key"], dict(item["fields"])) for item in json.loads(body)]


def _pbx(state: PbxState | None) -> dict[str, str] | None:
    return None if state is None else {"presence": state.presence.value, "note": state.note}


def _pbx_from(value: Any) -> PbxState | None:
    return None if value is None else PbxState(PbxPresence(value["presence"]), value["note"])


def presence_json(person: PersonPresence) -> str:
    """One person as the API shows them, as JSON."""
    teams, session = person.teams, person.session
    return json.dumps({
        "person_id": person.person_id, "display_name": person.display_name,
        "teams_user_id": person.teams_user_id,
        "teams": None if teams is None else {
            "availability": None if teams.availability is None else teams.availability.value,
            "activity": None if teams.activity is None else teams.activity.value,
            "status_message": teams.status_message, "updated_at": _at(teams.updated_at)},
        "pbx": _pbx(person.pbx),
        "line_state": None if person.line_state is None else person.line_state.value,
        "pbx_set_by_person": _pbx(person.pbx_set_by_person),
        "session": None if session is None else {
            "availability": session.presence.availability.value,
            "activity": session.presence.activity.value,
            "expires_at": _at(session.expires_at)},
    })


def presence_from(connection: str, key: str, body: str) -> PersonPresence:
    """The person of `presence_json`."""
    data = json.loads(body)
    teams, session = data["teams"], data["session"]
    return PersonPresence(
        key=key, connection=connection, person_id=data["person_id"],
        display_name=data["display_name"], teams_user_id=data["teams_user_id"],
        teams=None if teams is None else TeamsSide(
            None if teams["availability"] is None else Availability(teams["availability"]),
            None if teams["activity"] is None else Activity(teams["activity"]),
            teams["status_message"], _time(teams["updated_at"])),
        pbx=_pbx_from(data["pbx"]),
        line_state=None if data["line_state"] is None else LineState(data["line_state"]),
        pbx_set_by_person=_pbx_from(data["pbx_set_by_person"]),
        session=None if session is None else TeamsSession(
            TeamsPresence(Availability(session["availability"]),
                          Activity(session["activity"])),
            _time(session["expires_at"])),
    )
