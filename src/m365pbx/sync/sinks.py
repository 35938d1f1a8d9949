"""Where the hub's PBX writes go: the person's PBX connection (Teams: pbx_to_teams.sink)."""

from __future__ import annotations

from collections.abc import Mapping

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import PbxConnection
from m365pbx.sync.hub import RetryLater
from m365pbx.sync.people import Person


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
