"""Teams writes as Graph requests, alone or inside a `$batch`, and their answers as outcomes.

graph.md 5: a batch holds at most 20 requests, each with a unique `id` and a `url`
relative to the version; a request with a body needs `headers` with a Content-Type; each
inner request is throttled on its own (an inner 429 carries its own Retry-After).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from m365pbx.core.durations import iso_duration
from m365pbx.core.mapping import Channel
from m365pbx.core.policy import DEFAULT_SESSION_LIFETIME, StatusAction, TeamsAction
from m365pbx.graph.errors import GraphError, NotFound, graph_error

MAX_BATCH = 20
# Graph's own default is 5 minutes (graph.md 3.3); ours is the policy's, stated explicitly.
DEFAULT_SESSION = timedelta(seconds=DEFAULT_SESSION_LIFETIME)
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class TeamsRequest:
    """One presence write: POST `path` (relative to /v1.0) with `body`."""

    path: str
    body: dict[str, Any]
    # clearPresence answers 404 when the session is already gone (expired, or cleared
    # before a restart): the goal is reached, so that is a success.
    missing_is_done: bool = False

    def batch_item(self, item_id: str) -> dict[str, Any]:
        """This request as one entry of a `$batch` body."""
        return {"id": item_id, "method": "POST", "url": self.path, "headers": dict(_JSON),
                "body": self.body}


def status_request(user_id: str, action: StatusAction, now: datetime) -> TeamsRequest:
    """setStatusMessage with the PBX note, expiring after the action's lifetime ("" clears)."""
    status: dict[str, Any] = {"message": {"content": action.text, "contentType": "text"}}
    if action.text and action.lifetime:
        expires = (now + timedelta(seconds=action.lifetime)).astimezone(UTC)
        # graph.md 3.1: dateTimeTimeZone carries no offset inside dateTime.
        status["expiryDateTime"] = {"dateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.0000000"),
                                    "timeZone": "UTC"}
    return TeamsRequest(f"/users/{user_id}/presence/setStatusMessage", {"statusMessage": status})


def request_for(user_id: str, session_id: str, action: TeamsAction | StatusAction,
                now: datetime) -> TeamsRequest:
    """The Graph request that carries out `action` for the Teams user `user_id` at `now`."""
    if isinstance(action, StatusAction):
        return status_request(user_id, action, now)
    base = f"/users/{user_id}/presence"
    presence = action.presence
    if action.channel is Channel.SESSION:
        if presence is None:
            return TeamsRequest(f"{base}/clearPresence", {"sessionId": session_id},
                                missing_is_done=True)
        lifetime = (timedelta(seconds=action.lifetime) if action.lifetime
                    else DEFAULT_SESSION)
        return TeamsRequest(f"{base}/setPresence", {
            "sessionId": session_id,
            "availability": presence.availability.value,
            "activity": presence.activity.value,
            "expirationDuration": iso_duration(lifetime),
        })
    if presence is None:
        return TeamsRequest(f"{base}/clearUserPreferredPresence", {})
    body: dict[str, Any] = {"availability": presence.availability.value,
                            "activity": presence.activity.value}
    if action.lifetime:
        body["expirationDuration"] = iso_duration(timedelta(seconds=action.lifetime))
    return TeamsRequest(f"{base}/setUserPreferredPresence", body)


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, Mapping):
        return None
    for key, value in headers.items():
        if str(key).lower() == name:
            return str(value)
    return None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def outcome_of(request: TeamsRequest, answer: Mapping[str, Any] | None) -> GraphError | None:
    """None when one inner answer of a batch means done, else the error it stands for."""
    if answer is None:
        return graph_error(502, "MissingResponse", "the batch answer has no response for it",
                           request_id=None, retry_after=None)
    status = answer.get("status")
    if not isinstance(status, int):
        return graph_error(502, "BadResponse", "the batch answer has no status for it",
                           request_id=None, retry_after=None)
    if 200 <= status < 300:
        return None
    code, message = "", f"status {status}"
    body = answer.get("body")
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        code = str(body["error"].get("code", ""))
        message = str(body["error"].get("message", message))
    headers = answer.get("headers")
    error = graph_error(status, code, message, request_id=_header(headers, "request-id"),
                        retry_after=_seconds(_header(headers, "retry-after")))
    if request.missing_is_done and isinstance(error, NotFound):
        return None
    return error
