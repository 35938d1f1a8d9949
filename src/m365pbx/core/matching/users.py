"""The two kinds of people being matched: PBX users and Microsoft (Graph) users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# A Microsoft user exactly as Graph returns it from GET /users (a JSON object with at least `id`).
MicrosoftUser = Mapping[str, object]

PBX_KEY_FIELD = "h323"


@dataclass(frozen=True, slots=True)
class PbxUser:
    """One PBX user: the unique key (the short name, h323) and its other fields by column name."""

    key: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def value(self, name: str) -> str | None:
        """Return the field's value, or None when the user has no (or an empty) value for it."""
        if name == PBX_KEY_FIELD:
            return self.key
        found = self.fields.get(name)
        return found if found else None


def microsoft_user_id(user: MicrosoftUser) -> str:
    """Return the user's object id (callers have checked it is a non-empty string)."""
    user_id = user.get("id")
    assert isinstance(user_id, str)
    return user_id
