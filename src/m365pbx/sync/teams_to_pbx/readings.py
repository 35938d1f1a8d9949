"""Turning Graph presence into the policy's TeamsReading and handing it to the hub."""

from __future__ import annotations

from m365pbx.core.policy import TeamsReading
from m365pbx.core.presence import UnknownValueFallback, UnknownValues, parse_teams_presence
from m365pbx.graph.presence import PresenceReading


class ReadingConverter:
    """Parses Graph's strings once, counting values Microsoft added that we do not know."""

    def __init__(self, fallback: UnknownValueFallback | None = None) -> None:
        self.fallback = fallback or UnknownValueFallback()
        self.unknown = UnknownValues()

    def convert(self, reading: PresenceReading, at: float) -> TeamsReading:
        """The policy's reading for one Graph presence, observed at `at` (POSIX seconds)."""
        presence = parse_teams_presence(reading.availability, reading.activity,
                                        fallback=self.fallback, unknown=self.unknown)
        return TeamsReading(presence, at, reading.sequence, reading.status_message)
