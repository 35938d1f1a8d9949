"""Validation of the presence actions' parameters (graph.md 3.3-3.7).

Each parser takes the decoded JSON body and returns canonical values or raises a 400
`BadRequest` that names the parameter, the value and what would be accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from m365sim.presence.requests import bad_request, object_parameter, text_parameter
from m365sim.presence.states import (
    PREFERRED_STATES,
    SET_PRESENCE_STATES,
    State,
    describe,
    preferred_state,
    set_presence_state,
)
from m365sim.presence.timefmt import US_PER_MINUTE, parse_date_time_zone, parse_duration_us

# setPresence's expirationDuration: default PT5M, valid PT5M..PT4H (graph.md 3.3).
SESSION_DEFAULT_US = 5 * US_PER_MINUTE
SESSION_MIN_US = 5 * US_PER_MINUTE
SESSION_MAX_US = 240 * US_PER_MINUTE

# Teams caps a status message at 280 characters; Graph documents no limit (chosen).
STATUS_MESSAGE_MAX = 280


def parse_session_id(data: dict[str, Any], action: str, app_id: str) -> str:
    """The sessionId, which must be the calling application's id (graph.md 3.3)."""
    session_id = text_parameter(data, "sessionId", action, required=True)
    assert session_id is not None
    if session_id.lower() != app_id.lower():
        raise bad_request(f"Invalid sessionId '{session_id}': an application can only use its "
                          f"own application (client) id '{app_id}' as the presence session id.")
    return app_id


def _state(data: dict[str, Any], action: str, allowed: frozenset[State],
           lookup: Callable[[str, str], State | None]) -> State:
    availability = text_parameter(data, "availability", action, required=True)
    activity = text_parameter(data, "activity", action, required=True)
    assert availability is not None and activity is not None
    state = lookup(availability, activity)
    if state is None:
        raise bad_request(f"The combination of availability '{availability}' and activity "
                          f"'{activity}' is not supported by {action}. Supported combinations: "
                          f"{describe(allowed)}.")
    return state


def _duration(data: dict[str, Any], action: str) -> int | None:
    text = text_parameter(data, "expirationDuration", action, required=False)
    if text is None:
        return None
    duration = parse_duration_us(text)
    if duration is None:
        raise bad_request(f"Invalid value '{text}' for the parameter 'expirationDuration': an "
                          "ISO 8601 duration such as 'PT1H' is expected.")
    return duration


def parse_set_presence(data: dict[str, Any], app_id: str) -> tuple[str, State, int]:
    """sessionId, the (availability, activity) pair and the session lifetime in µs."""
    session_id = parse_session_id(data, "setPresence", app_id)
    state = _state(data, "setPresence", SET_PRESENCE_STATES, set_presence_state)
    lifetime = _duration(data, "setPresence")
    if lifetime is None:
        lifetime = SESSION_DEFAULT_US
    if not SESSION_MIN_US <= lifetime <= SESSION_MAX_US:
        raise bad_request(f"Invalid value '{data['expirationDuration']}' for the parameter "
                          "'expirationDuration': the valid range is PT5M to PT4H (5 to 240 "
                          "minutes).")
    return session_id, state, lifetime


def parse_preferred(data: dict[str, Any]) -> tuple[State, int | None]:
    """The preferred (availability, activity) pair and its lifetime (None: the default)."""
    state = _state(data, "setUserPreferredPresence", PREFERRED_STATES, preferred_state)
    lifetime = _duration(data, "setUserPreferredPresence")
    if lifetime is not None and lifetime <= 0:
        raise bad_request("Invalid value for the parameter 'expirationDuration': the duration "
                          "must be longer than zero.")
    return state, lifetime


def _refuse_unknown(value: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed and not key.startswith("@odata."):
            raise bad_request(f"Unknown property '{key}' in '{where}'. Allowed: "
                              f"{', '.join(allowed)}.")


def parse_status_message(data: dict[str, Any], now: int) -> tuple[str | None, int | None]:
    """The message text (None or empty: clear it) and its expiry in µs (None: never)."""
    if "statusMessage" not in data:
        raise bad_request("The parameter 'statusMessage' is required for the operation "
                          "'setStatusMessage'.")
    status = object_parameter(data, "statusMessage", "body")
    if status is None:
        return None, None
    # publishedDateTime is read-only; a client echoing it back is tolerated (ignored).
    _refuse_unknown(status, ("message", "expiryDateTime", "publishedDateTime"), "statusMessage")
    message = object_parameter(status, "message", "statusMessage")
    if message is None:
        return None, None
    _refuse_unknown(message, ("content", "contentType"), "statusMessage.message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise bad_request("Invalid value for 'statusMessage.message.content': a string is "
                          "expected.")
    content_type = message.get("contentType", "text")
    if not isinstance(content_type, str) or content_type.lower() not in ("text", "html"):
        raise bad_request(f"Invalid value {content_type!r} for 'statusMessage.message."
                          "contentType': 'text' or 'html' is expected.")
    if content_type.lower() != "text":
        raise bad_request("A presence status message supports contentType 'text' only.")
    if content and len(content) > STATUS_MESSAGE_MAX:
        raise bad_request(f"The status message is {len(content)} characters long; at most "
                          f"{STATUS_MESSAGE_MAX} are allowed.")
    expiry = object_parameter(status, "expiryDateTime", "statusMessage")
    if expiry is None or not content:
        return content or None, None
    _refuse_unknown(expiry, ("dateTime", "timeZone"), "statusMessage.expiryDateTime")
    date_time, time_zone = expiry.get("dateTime"), expiry.get("timeZone", "UTC")
    if not isinstance(date_time, str) or not isinstance(time_zone, str):
        raise bad_request("Invalid 'statusMessage.expiryDateTime': 'dateTime' and 'timeZone' "
                          "must be strings.")
    expires_at = parse_date_time_zone(date_time, time_zone)
    if expires_at is None:
        raise bad_request(f"Invalid 'statusMessage.expiryDateTime': cannot read dateTime "
                          f"'{date_time}' in time zone '{time_zone}'.")
    if expires_at <= now:
        raise bad_request("Invalid 'statusMessage.expiryDateTime': it lies in the past.")
    return content, expires_at
