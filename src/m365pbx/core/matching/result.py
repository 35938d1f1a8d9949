"""The outcome of a matching run: matched pairs, unmatched users, ambiguous users, warnings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Side = Literal["pbx", "teams"]

PIN_RULE = "pin"


@dataclass(frozen=True, slots=True)
class Match:
    """A PBX user (h323) matched to one Microsoft user (id) by a rule (or `pin`)."""

    pbx: str
    teams: str
    rule: str


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A user of one side that has no partner, with the reason in words."""

    side: Side
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A PBX user with several possible Microsoft users (or sharing one with others)."""

    pbx: str
    candidates: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class MatchResult:
    """Deterministic result: every PBX user is in exactly one of matched, unmatched, ambiguous."""

    matched: tuple[Match, ...]
    unmatched: tuple[Unmatched, ...]
    ambiguous: tuple[Ambiguous, ...]
    warnings: tuple[str, ...] = ()
    pbx_users: int = 0
    teams_users: int = 0
    left_out: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        """Return the counts a person looks at first."""
        return {
            "pbx_users": self.pbx_users,
            "teams_users": self.teams_users,
            "matched": len(self.matched),
            "unmatched_pbx": sum(1 for item in self.unmatched if item.side == "pbx"),
            "unmatched_teams": sum(1 for item in self.unmatched if item.side == "teams"),
            "ambiguous": len(self.ambiguous),
            "left_out": dict(sorted(self.left_out.items())),
        }

    def as_dict(self) -> dict[str, object]:
        """Return the JSON document: matched, unmatched, ambiguous, warnings and summary."""
        return {
            "matched": [
                {"pbx": item.pbx, "teams": item.teams, "rule": item.rule} for item in self.matched
            ],
            "unmatched": [
                {"side": item.side, "key": item.key, "reason": item.reason}
                for item in self.unmatched
            ],
            "ambiguous": [
                {"pbx": item.pbx, "candidates": list(item.candidates), "reason": item.reason}
                for item in self.ambiguous
            ],
            "warnings": list(self.warnings),
            "summary": self.summary(),
        }
