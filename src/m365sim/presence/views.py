"""The presence JSON the simulator answers with and publishes (graph.md 3.1)."""

from __future__ import annotations

from typing import Any

from m365sim.presence.model import UserPresence, View
from m365sim.presence.states import PRESENCE_UNKNOWN
from m365sim.presence.timefmt import graph_instant, graph_local

PRESENCE_TYPE = "#microsoft.graph.presence"

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # ASCII order
_STAMP_WIDTH = 12


def sequence_stamp(counter: int) -> str:
    """A fixed-width base-62 stamp; a larger counter sorts later as a plain string."""
    digits = []
    for _ in range(_STAMP_WIDTH):
        counter, digit = divmod(counter, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def public_presence(presence: UserPresence, view: View) -> dict[str, Any]:
    """The presence as another user (or an app) reads it: no status-message times."""
    return {
        "id": presence.user_id,
        "availability": view.availability,
        "activity": view.activity,
        "statusMessage": (
            None if view.status_message is None
            else {"message": {"content": view.status_message, "contentType": "text"}}
        ),
        "outOfOfficeSettings": {"message": None, "isOutOfOffice": view.out_of_office},
        "sequenceNumber": presence.sequence,
    }


def own_presence(presence: UserPresence, view: View) -> dict[str, Any]:
    """The presence as the user reads their own: with the status message's times."""
    body = public_presence(presence, view)
    status = presence.status
    if body["statusMessage"] is not None and status is not None:
        if status.expires_at is not None:
            body["statusMessage"]["expiryDateTime"] = {
                "dateTime": graph_local(status.expires_at), "timeZone": "UTC"}
        body["statusMessage"]["publishedDateTime"] = graph_instant(status.published_at)
    return body


def unknown_presence(user_id: str) -> dict[str, Any]:
    """The answer for an id without Teams presence (unknown user, no Teams licence)."""
    return {
        "id": user_id,
        "availability": PRESENCE_UNKNOWN[0],
        "activity": PRESENCE_UNKNOWN[1],
        "statusMessage": None,
        "outOfOfficeSettings": {"message": None, "isOutOfOffice": False},
        "sequenceNumber": None,
    }


def notification_data(presence: UserPresence, view: View) -> dict[str, Any]:
    """What a rich presence notification carries: the public view with its annotations."""
    return {
        "@odata.type": PRESENCE_TYPE,
        "@odata.id": f"users/{presence.user_id}/presence",
        **public_presence(presence, view),
    }
