"""What PBXs and apps send to the presence API: events and user directories, validated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from m365pbx.core.presence import LineState, PbxPresence, lookup_line_state, lookup_pbx_presence
from m365pbx.pbx.base import LineStateEvent, PbxEvent, PbxPresenceEvent, PbxUser

MAX_EVENTS = 1000
"""Events per request; more is refused with 422 (send several requests)."""

MAX_USERS = 100_000
"""Users per directory upload."""

MAX_USERS_BODY_BYTES = 16 * 1024 * 1024
"""Bytes per directory upload: 100,000 users of about 160 bytes (key, cn, email, ...)."""

MAX_EVENTS_BODY_BYTES = 2 * 1024 * 1024
"""Bytes per list of events: 1,000 events even with the longest keys and notes."""

MAX_NAME_CHARS = 256
"""A user's display name (`cn`)."""

MAX_FIELD_CHARS = 1024
"""Any other text field of a user."""

MAX_FIELDS = 32
"""Fields per user besides the key."""

MAX_FIELD_NAME_CHARS = 64
"""A field's name."""

MAX_NOTE_CHARS = 1000
"""The note that goes with a PBX presence."""

MAX_SEQUENCE = 2**63 - 1


def _known_spelling(lookup: Any) -> Any:
    # Accept the spellings core/presence knows ("busy" for a line in use, any case); a value
    # it does not know falls through to the enum check, whose message lists the valid ones.
    def convert(value: object) -> object:
        if isinstance(value, str):
            return lookup(value) or value
        return value

    return BeforeValidator(convert)


LenientLineState = Annotated[LineState, _known_spelling(lookup_line_state)]
LenientPbxPresence = Annotated[PbxPresence, _known_spelling(lookup_pbx_presence)]
Key = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S(.*\S)?$")]
FieldText = Annotated[str, Field(max_length=MAX_FIELD_CHARS)]


class EventIn(BaseModel):
    """One line-state change or one PBX presence set by a person; give exactly one of them."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    key: Key = Field(description="the user's key, as in the directory PUT to this connection")
    line_state: LenientLineState | None = Field(default=None, description="what the phone does")
    presence: LenientPbxPresence | None = Field(
        default=None, description="the PBX presence the person set"
    )
    note: str = Field(default="", max_length=MAX_NOTE_CHARS,
                      description="free text with `presence`")
    sequence: int = Field(
        default=0, ge=0, le=MAX_SEQUENCE, description="order stamp; higher is newer, 0 for none"
    )
    at: AwareDatetime | None = Field(
        default=None, description="when it happened (with time zone); default: on arrival"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> EventIn:
        if (self.line_state is None) == (self.presence is None):
            raise ValueError("give either line_state or presence (one per item)")
        if self.line_state is not None and self.note:
            raise ValueError("a note goes with presence, not with line_state")
        return self

    def to_event(self, received_at: datetime) -> PbxEvent:
        """Return the PbxEvent; `received_at` stands in for a missing `at`."""
        at = self.at or received_at
        if self.line_state is not None:
            return LineStateEvent(self.key, self.line_state, at, self.sequence)
        assert self.presence is not None
        return PbxPresenceEvent(self.key, self.presence, at, self.note, self.sequence)


class UserIn(BaseModel):
    """One PBX user: a unique key plus any text fields (cn, email, extension, sip, ...)."""

    model_config = ConfigDict(
        extra="allow", coerce_numbers_to_str=True, hide_input_in_errors=True
    )

    key: Key = Field(description="the user's unique short name on the PBX (h323)")
    cn: str | None = Field(default=None, max_length=MAX_NAME_CHARS, description="display name")
    email: str | None = Field(default=None, max_length=MAX_FIELD_CHARS)
    extension: str | None = Field(default=None, max_length=MAX_FIELD_CHARS,
                                  description="phone number or extension")
    sip: str | None = Field(default=None, max_length=MAX_FIELD_CHARS, description="SIP address")
    __pydantic_extra__: dict[str, FieldText] = Field(init=False)

    @model_validator(mode="after")
    def _few_short_fields(self) -> UserIn:
        extra = self.__pydantic_extra__ or {}
        named = sum(value is not None for value in (self.cn, self.email, self.extension, self.sip))
        if named + len(extra) > MAX_FIELDS:
            raise ValueError(f"a user has at most {MAX_FIELDS} fields besides the key")
        for name in extra:
            if len(name) > MAX_FIELD_NAME_CHARS:
                raise ValueError(f"a field name has at most {MAX_FIELD_NAME_CHARS} characters")
        return self

    def to_user(self) -> PbxUser:
        """Return the PbxUser with every non-empty field."""
        fields = {
            name: value
            for name, value in {
                "cn": self.cn,
                "email": self.email,
                "extension": self.extension,
                "sip": self.sip,
                **(self.__pydantic_extra__ or {}),
            }.items()
            if value
        }
        return PbxUser(self.key, fields)
