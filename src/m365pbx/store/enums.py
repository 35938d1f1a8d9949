"""The closed vocabularies stored in the database (kept as strings, validated in Python)."""

from __future__ import annotations

from enum import StrEnum


class Origin(StrEnum):
    """Who manages a declarable object: the YAML file (read-only elsewhere) or the store."""

    FILE = "file"
    STORE = "store"


class CredentialKind(StrEnum):
    """How an app registration proves its identity."""

    SECRET = "secret"  # noqa: S105 - a kind of credential, not a secret
    CERTIFICATE = "certificate"


class MatchStatus(StrEnum):
    """The outcome of matching one person between Teams and the PBX."""

    MATCHED = "matched"
    UNMATCHED = "unmatched"
    AMBIGUOUS = "ambiguous"


class Side(StrEnum):
    """One side of the bridge."""

    TEAMS = "teams"
    PBX = "pbx"
