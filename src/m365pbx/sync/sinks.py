"""Where the hub's writes go: the person's PBX connection, and Graph for Teams."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import timedelta

from m365pbx.core.mapping import Channel
from m365pbx.core.policy import TeamsAction
from m365pbx.core.presence import PbxPresence
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import NotFound, Throttled, Unavailable
from m365pbx.graph.presence import (
    clear_preferred_presence,
    clear_presence,
    set_preferred_presence,
    set_presence,
)
from m365pbx.pbx.base import PbxConnection
from m365pbx.sync.hub import RetryLater
from m365pbx.sync.people import Person

DEFAULT_SESSION = timedelta(minutes=5)


class ConnectionsSink:
    """Shows PBX presence through the PBX connection each person belongs to."""

    def __init__(self, connections: Mapping[str, PbxConnection]) -> None:
        self.connections = connections

    async def show(self, person: Person, presence: PbxPresence, note: str) -> None:
        """Show `presence` for `person` in their PBX."""
        connection = self.connections.get(person.connection)
        if connection is None:
            raise RetryLater(60.0, f"PBX connection {person.connection!r} is not running")
        await connection.set_presence(person.pbx_user, presence, note)


class GraphTeamsSink:
    """Writes our presence session (setPresence) and the preferred presence in Teams."""

    def __init__(self, client_for: Callable[[Person], GraphClient],
                 session_id_for: Callable[[Person], str]) -> None:
        self.client_for = client_for
        self.session_id_for = session_id_for

    async def apply(self, person: Person, action: TeamsAction) -> None:
        """Carry out one action; throttling and outages become RetryLater."""
        client = self.client_for(person)
        user = person.teams_user_id
        try:
            if action.channel is Channel.SESSION:
                if action.presence is None:
                    # NotFound: already gone (expired, or cleared before a restart).
                    with contextlib.suppress(NotFound):
                        await clear_presence(client, user, session_id=self.session_id_for(person))
                else:
                    lifetime = timedelta(seconds=action.lifetime) if action.lifetime else (
                        DEFAULT_SESSION
                    )
                    await set_presence(client, user, session_id=self.session_id_for(person),
                                       availability=action.presence.availability.value,
                                       activity=action.presence.activity.value,
                                       expiration=lifetime)
            elif action.presence is None:
                await clear_preferred_presence(client, user)
            else:
                expiration = timedelta(seconds=action.lifetime) if action.lifetime else None
                await set_preferred_presence(client, user,
                                             availability=action.presence.availability.value,
                                             activity=action.presence.activity.value,
                                             expiration=expiration)
        except Throttled as exc:
            raise RetryLater(exc.retry_after, exc.describe()) from None
        except Unavailable as exc:
            raise RetryLater(exc.retry_after or 10.0, exc.describe()) from None
