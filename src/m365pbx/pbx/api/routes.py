"""The presence API's routes: people and presence (read), the stream, events and users (write)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request, WebSocket
from fastapi.security import HTTPBearer

from m365pbx.clock import Clock, SystemClock
from m365pbx.pbx.api.body import body_limit
from m365pbx.pbx.api.connection import ApiConnection, ConnectionUnavailable
from m365pbx.pbx.api.guard import ERROR_RESPONSES, ApiError, bearer_key, guarded_route_class
from m365pbx.pbx.api.guard import requires as needs
from m365pbx.pbx.api.inbound import (
    MAX_EVENTS,
    MAX_EVENTS_BODY_BYTES,
    MAX_USERS,
    MAX_USERS_BODY_BYTES,
    EventIn,
    UserIn,
)
from m365pbx.pbx.api.keys import ApiKeyChecker, Scope
from m365pbx.pbx.api.redact import install_key_redaction
from m365pbx.pbx.api.schemas import (
    CompactPresence,
    ErrorBody,
    EventResult,
    EventsAnswer,
    PeopleOut,
    PersonOut,
    PresenceMapOut,
    UsersAnswer,
)
from m365pbx.pbx.api.stream import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_QUEUE_SIZE,
    ChangeFanout,
    serve_stream,
)
from m365pbx.pbx.api.view import PersonPresence, PresenceView
from m365pbx.pbx.base import PbxEvent

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
# Only documents the scheme in OpenAPI; the route class does the checking, before the body.
_BEARER = [Depends(HTTPBearer(auto_error=False, description="an API key: m365pbx_..."))]

ConnectionFilter = Annotated[
    str | None, Query(max_length=100, description="only people on this PBX connection")
]
SearchText = Annotated[
    str | None,
    Query(max_length=200, description="only people whose display name or key contains this"),
]
ConnectionName = Annotated[str, Path(max_length=100, description="name of an API connection")]


def api_router(
    view: PresenceView,
    connections: Mapping[str, ApiConnection],
    keys: ApiKeyChecker,
    *,
    clock: Clock | None = None,
    stream_queue_size: int = DEFAULT_QUEUE_SIZE,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
) -> APIRouter:
    """Return the `/api/v1` router; `connections` is read on each request (it may change)."""
    clock = clock or SystemClock()
    # The stream accepts ?key=, which uvicorn would otherwise write to its logs.
    install_key_redaction()
    fanout = ChangeFanout(view, stream_queue_size)
    router = APIRouter(
        prefix=PREFIX,
        tags=["presence API"],
        route_class=guarded_route_class(keys),
        responses=ERROR_RESPONSES,
    )

    def check_connection_filter(connection: str | None, people: list[PersonPresence]) -> None:
        if connection is None or connection in connections:
            return
        if any(person.connection == connection for person in people):
            return
        raise ApiError(404, "unknown-connection", f"there is no PBX connection {connection!r}")

    def api_connection(name: str) -> ApiConnection:
        found = connections.get(name)
        if found is None:
            raise ApiError(404, "unknown-connection", f"there is no API connection {name!r}")
        return found

    @router.get(
        "/people",
        response_model=PeopleOut,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.READ),
        responses={404: {"model": ErrorBody, "description": "Unknown connection"}},
    )
    async def list_people(
        connection: ConnectionFilter = None, q: SearchText = None
    ) -> PeopleOut:
        """Everyone's presence on both sides, by connection and key."""
        people = view.people()
        check_connection_filter(connection, people)
        wanted = q.casefold() if q else None
        chosen = [
            PersonOut.of(person)
            for person in people
            if (connection is None or person.connection == connection)
            and (
                wanted is None
                or wanted in person.key.casefold()
                or wanted in (person.display_name or "").casefold()
            )
        ]
        return PeopleOut(people=chosen)

    @router.get(
        "/people/{key}",
        response_model=PersonOut,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.READ),
        responses={
            404: {"model": ErrorBody, "description": "No such person"},
            400: {"model": ErrorBody, "description": "The key exists on several connections"},
        },
    )
    async def get_person(
        key: Annotated[str, Path(max_length=255)], connection: ConnectionFilter = None
    ) -> PersonOut:
        """One person's presence on both sides."""
        found = [
            person
            for person in view.people()
            if person.key == key and (connection is None or person.connection == connection)
        ]
        if not found:
            where = f" on connection {connection!r}" if connection else ""
            raise ApiError(404, "unknown-person", f"there is no person with key {key!r}{where}")
        if len(found) > 1:
            names = ", ".join(sorted(person.connection for person in found))
            raise ApiError(
                400,
                "ambiguous-key",
                f"key {key!r} exists on several connections ({names}); add ?connection=",
            )
        return PersonOut.of(found[0])

    @router.get(
        "/presence",
        response_model=PresenceMapOut,
        response_model_exclude_none=True,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.READ),
        responses={404: {"model": ErrorBody, "description": "Unknown connection"}},
    )
    async def presence_map(connection: ConnectionFilter = None) -> PresenceMapOut:
        """Connection → key → both sides in a few words, for busy-lamp fields."""
        people = view.people()
        check_connection_filter(connection, people)
        result: dict[str, dict[str, CompactPresence]] = {}
        for person in people:
            if connection is None or person.connection == connection:
                result.setdefault(person.connection, {})[person.key] = CompactPresence.of(person)
        return PresenceMapOut(connections=result)

    @router.post(
        "/connections/{name}/events",
        status_code=202,
        response_model=EventsAnswer,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.WRITE) | body_limit(MAX_EVENTS_BODY_BYTES),
        responses={
            404: {"model": ErrorBody, "description": "No API connection of that name"},
            503: {"model": ErrorBody, "description": "Stopped or too many unprocessed events"},
        },
    )
    async def post_events(
        request: Request,
        name: ConnectionName,
        events: Annotated[list[EventIn], Body(max_length=MAX_EVENTS)],
    ) -> EventsAnswer:
        """Line state and PBX presence per person; items with unknown keys change nothing."""
        target = api_connection(name)
        # Several nodes: another node may run the connection's tenant (docs/cluster.md).
        waiting = None if target.relay is None else target.relay.waiting()
        if waiting is not None:
            raise ApiError(503, "starting", waiting, {"Retry-After": "1"})
        relay = target.relay if target.relay is not None and target.relay.elsewhere() else None
        watches = target.watches if relay is None else relay.watches
        received_at = clock.now()
        accepted: list[PbxEvent] = []
        items = []
        for index, item in enumerate(events):
            if watches(item.key):
                accepted.append(item.to_event(received_at))
                items.append(EventResult(index=index, key=item.key, result="accepted"))
            else:
                items.append(
                    EventResult(
                        index=index,
                        key=item.key,
                        result="refused",
                        code="unknown-key",
                        message=f"m365pbx follows no user {item.key!r} on connection {name!r}",
                    )
                )
        try:
            if relay is None:
                target.submit(accepted)
            elif accepted:
                await relay.events(accepted)
        except ConnectionUnavailable as exc:
            raise ApiError(503, "unavailable", str(exc), {"Retry-After": "1"}) from None
        refused = len(items) - len(accepted)
        log.debug(
            "API client %r sent %d events to %r (%d refused)",
            request.state.api_client.name, len(items), name, refused,
        )
        return EventsAnswer(accepted=len(accepted), refused=refused, items=items)

    @router.put(
        "/connections/{name}/users",
        response_model=UsersAnswer,
        dependencies=_BEARER,
        openapi_extra=needs(Scope.WRITE) | body_limit(MAX_USERS_BODY_BYTES),
        responses={
            404: {"model": ErrorBody, "description": "No API connection of that name"},
            503: {"model": ErrorBody, "description": "Cannot reach the node running it"},
        },
    )
    async def put_users(
        request: Request,
        name: ConnectionName,
        users: Annotated[list[UserIn], Body(max_length=MAX_USERS)],
        allow_empty: Annotated[
            bool, Query(description="accept an empty list (removes every user)")
        ] = False,
    ) -> UsersAnswer:
        """Replace the connection's user directory (matched against Teams users)."""
        target = api_connection(name)
        duplicates = sorted(key for key, n in Counter(u.key for u in users).items() if n > 1)
        if duplicates:
            shown = ", ".join(repr(key) for key in duplicates[:5])
            raise ApiError(
                422, "duplicate-key", f"keys must be unique; repeated: {shown}; nothing changed"
            )
        if not users and not allow_empty:
            raise ApiError(
                422,
                "empty-directory",
                "an empty list would remove every user; add ?allow_empty=true if you mean it",
            )
        relay = target.relay if target.relay is not None and target.relay.elsewhere() else None
        if relay is None:
            count = target.replace_users(user.to_user() for user in users)
        else:
            try:
                await relay.users([user.to_user() for user in users])
            except ConnectionUnavailable as exc:
                raise ApiError(503, "unavailable", str(exc), {"Retry-After": "1"}) from None
            count = len(users)
        log.info(
            "API client %r replaced the users of %r (%d)",
            request.state.api_client.name, name, count,
        )
        return UsersAnswer(connection=name, users=count)

    @router.websocket("/stream")
    async def stream(
        websocket: WebSocket,
        key: Annotated[
            str | None, Query(description="API key, for clients that cannot set headers")
        ] = None,
        connection: ConnectionFilter = None,
    ) -> None:
        """A snapshot of everyone, then each change (see the stream module for closing codes)."""
        await serve_stream(
            websocket,
            fanout=fanout,
            keys=keys,
            key=bearer_key(websocket.headers) or key,
            connection=connection,
            close_timeout=close_timeout,
        )

    return router
