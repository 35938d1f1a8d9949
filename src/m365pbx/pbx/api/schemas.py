"""The JSON the presence API sends: pydantic models, so OpenAPI describes every answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, PbxState
from m365pbx.pbx.api.view import PersonPresence


class ErrorDetail(BaseModel):
    """What went wrong: a stable code for programs and a sentence for people."""

    code: str = Field(examples=["unknown-connection"])
    message: str = Field(examples=["there is no API connection named 'office'"])


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


class TeamsOut(BaseModel):
    """Teams presence as Graph last reported it."""

    availability: Availability | None = None
    activity: Activity | None = None
    status_message: str | None = None
    updated_at: datetime | None = None


class PbxStateOut(BaseModel):
    """A PBX presence with its note."""

    presence: PbxPresence
    note: str = ""

    @classmethod
    def of(cls, state: PbxState | None) -> PbxStateOut | None:
        """Return the model of a PbxState, or None."""
        return None if state is None else cls(presence=state.presence, note=state.note)


class SessionOut(BaseModel):
    """m365pbx's own presence session in Teams for the person, while one is active."""

    availability: Availability
    activity: Activity
    expires_at: datetime | None = None


class PersonOut(BaseModel):
    """One person on one PBX connection, both sides; null where unknown."""

    key: str = Field(description="the user's key on the PBX connection (unique per connection)")
    connection: str = Field(description="name of the PBX connection")
    person_id: int | None = None
    display_name: str | None = None
    teams_user_id: str | None = None
    teams: TeamsOut | None = Field(default=None, description="Teams presence")
    pbx: PbxStateOut | None = Field(
        default=None, description="what m365pbx shows for the person on the PBX side"
    )
    line_state: LineState | None = Field(default=None, description="what the phone is doing")
    pbx_set_by_person: PbxStateOut | None = Field(
        default=None, description="the PBX presence the person set on their phone or app"
    )
    session: SessionOut | None = Field(
        default=None, description="m365pbx's presence session in Teams (calls shown there)"
    )

    @classmethod
    def of(cls, person: PersonPresence) -> PersonOut:
        """Return the model of a PersonPresence."""
        teams = person.teams
        session = person.session
        return cls(
            key=person.key,
            connection=person.connection,
            person_id=person.person_id,
            display_name=person.display_name,
            teams_user_id=person.teams_user_id,
            teams=None
            if teams is None
            else TeamsOut(
                availability=teams.availability,
                activity=teams.activity,
                status_message=teams.status_message,
                updated_at=teams.updated_at,
            ),
            pbx=PbxStateOut.of(person.pbx),
            line_state=person.line_state,
            pbx_set_by_person=PbxStateOut.of(person.pbx_set_by_person),
            session=None
            if session is None
            else SessionOut(
                availability=session.presence.availability,
                activity=session.presence.activity,
                expires_at=session.expires_at,
            ),
        )


class PeopleOut(BaseModel):
    """A list of people."""

    people: list[PersonOut]


class CompactPresence(BaseModel):
    """Both sides of one person in a few words, for busy-lamp fields; absent where unknown."""

    availability: Availability | None = None
    activity: Activity | None = None
    pbx: PbxPresence | None = Field(default=None, description="what m365pbx shows on the PBX")
    note: str | None = None
    line_state: LineState | None = None
    set_by_person: PbxPresence | None = Field(
        default=None, description="the PBX presence the person set themselves"
    )

    @classmethod
    def of(cls, person: PersonPresence) -> CompactPresence:
        """Return the compact form of a PersonPresence."""
        teams = person.teams
        return cls(
            availability=teams.availability if teams else None,
            activity=teams.activity if teams else None,
            pbx=person.pbx.presence if person.pbx else None,
            note=(person.pbx.note or None) if person.pbx else None,
            line_state=person.line_state,
            set_by_person=person.pbx_set_by_person.presence if person.pbx_set_by_person else None,
        )


class PresenceMapOut(BaseModel):
    """Connection name → user key → compact presence."""

    connections: dict[str, dict[str, CompactPresence]]


class EventResult(BaseModel):
    """What became of one submitted event."""

    index: int = Field(description="position in the submitted list, from 0")
    key: str
    result: Literal["accepted", "refused"]
    code: str | None = Field(default=None, examples=["unknown-key"])
    message: str | None = None


class EventsAnswer(BaseModel):
    """The answer to a list of events: counts, and each item's result in order."""

    accepted: int
    refused: int
    items: list[EventResult]


class UsersAnswer(BaseModel):
    """The answer to a directory upload."""

    connection: str
    users: int = Field(description="how many users the connection now lists")


class SnapshotMessage(BaseModel):
    """The first message of the stream: everyone the client may see."""

    type: Literal["snapshot"] = "snapshot"
    people: list[PersonOut]


class ChangeMessage(BaseModel):
    """A later message of the stream: one person's new state."""

    type: Literal["change"] = "change"
    person: PersonOut
