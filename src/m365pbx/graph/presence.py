"""Presence calls: read many people at once, and write our session and preferred presence."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from m365pbx.core.durations import iso_duration
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import Throttled

# getPresencesByUserId takes at most 650 ids per request, and the presence limit (1,500
# requests per 30 s per app and tenant) counts each call as one request, however many ids
# it names (api-reference/v1.0/api/cloudcommunications-getpresencesbyuserid.md,
# concepts/throttling-limits.md "Cloud communication service limits").
MAX_IDS_PER_REQUEST = 650
PRESENCE_REQUESTS_PER_WINDOW = 1500
PRESENCE_WINDOW_S = 30.0


@dataclass(frozen=True, slots=True)
class PresenceReading:
    """One person's presence as Graph reported it (raw strings; core/presence parses them)."""

    user_id: str
    availability: str
    activity: str
    # None: the answer did not say (notifications and getPresencesByUserId usually omit it);
    # "": Graph said there is none (statusMessage null or empty).
    status_message: str | None = None
    sequence: str = ""
    out_of_office: bool = False


def parse_presence(data: dict[str, Any]) -> PresenceReading:
    """A PresenceReading from a Graph presence object; missing fields are empty."""
    message: str | None = "" if "statusMessage" in data else None
    status = data.get("statusMessage")
    if isinstance(status, dict):
        body = status.get("message")
        if isinstance(body, dict):
            message = str(body.get("content") or "")
    ooo = data.get("outOfOfficeSettings")
    return PresenceReading(
        user_id=str(data.get("id", "")),
        availability=str(data.get("availability") or ""),
        activity=str(data.get("activity") or ""),
        status_message=message,
        sequence=str(data.get("sequenceNumber") or ""),
        out_of_office=bool(isinstance(ooo, dict) and ooo.get("isOutOfOffice")),
    )


def chunks(ids: Sequence[str], size: int = MAX_IDS_PER_REQUEST) -> Iterable[Sequence[str]]:
    """The ids in slices Graph accepts."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


async def get_presences(client: GraphClient, user_ids: Sequence[str], *,
                        parallel: int = 1) -> list[PresenceReading]:
    """Presence of many people, 650 per request, up to `parallel` requests at a time.

    The order of the answer is not guaranteed. When a request fails the others still
    finish; then the error is raised (a 429 first, the longest Retry-After among them).
    """
    parts = list(chunks(list(dict.fromkeys(user_ids))))
    if parallel <= 1 or len(parts) <= 1:
        readings: list[PresenceReading] = []
        for part in parts:
            readings.extend(await _read_part(client, part))
        return readings
    gate = asyncio.Semaphore(parallel)

    async def one(part: Sequence[str]) -> list[PresenceReading]:
        async with gate:
            return await _read_part(client, part)

    answers = await asyncio.gather(*(one(part) for part in parts), return_exceptions=True)
    failures = [a for a in answers if isinstance(a, BaseException)]
    if failures:
        throttled = [f for f in failures if isinstance(f, Throttled)]
        raise (max(throttled, key=lambda t: t.retry_after) if throttled else failures[0])
    return [reading for answer in answers if not isinstance(answer, BaseException)
            for reading in answer]


async def _read_part(client: GraphClient, part: Sequence[str]) -> list[PresenceReading]:
    answer = await client.post_json("/v1.0/communications/getPresencesByUserId",
                                    {"ids": list(part)})
    return [parse_presence(item) for item in (answer or {}).get("value", [])
            if isinstance(item, dict)]


async def get_presence(client: GraphClient, user_id: str) -> PresenceReading:
    """One person's presence read directly; no statusMessage in the answer means none is set."""
    answer = await client.get_json(f"/v1.0/users/{user_id}/presence")
    reading = parse_presence(answer if isinstance(answer, dict) else {})
    if reading.status_message is None:
        reading = replace(reading, status_message="")
    return reading


async def set_presence(client: GraphClient, user_id: str, *, session_id: str,
                       availability: str, activity: str, expiration: timedelta) -> None:
    """Write (or refresh) our presence session for a person."""
    await client.post_json(f"/v1.0/users/{user_id}/presence/setPresence", {
        "sessionId": session_id,
        "availability": availability,
        "activity": activity,
        "expirationDuration": iso_duration(expiration),
    })


async def clear_presence(client: GraphClient, user_id: str, *, session_id: str) -> None:
    """Remove our presence session for a person."""
    await client.post_json(f"/v1.0/users/{user_id}/presence/clearPresence",
                           {"sessionId": session_id})
