"""A matched person as the running service sees them."""

from __future__ import annotations

from dataclasses import dataclass

from m365pbx.pbx.base import PbxUser


@dataclass(frozen=True, slots=True)
class Person:
    """A Teams user matched to a PBX user on one PBX connection."""

    id: int
    connection: str
    pbx_user: PbxUser
    teams_user_id: str
    tenant: str = ""
    display_name: str = ""
    # The Teams user's userPrincipalName, when the directory read it (for per-person settings).
    upn: str = ""

    @property
    def key(self) -> str:
        """The PBX user's unique key (h323)."""
        return self.pbx_user.key
