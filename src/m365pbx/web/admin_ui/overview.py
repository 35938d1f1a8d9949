"""The overview page's model: a light per part, grouped per tenant, with the AADSTS code."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from m365pbx.core.status import PartState, PartStatus

# Delegated presence subscriptions: at most 650 people per service account.
PEOPLE_PER_ACCOUNT = 650
_WORST_FIRST = ("red", "amber", "grey", "green")
_AADSTS = re.compile(r"AADSTS(\d+)")
_COLOUR = {PartState.OK: "green", PartState.STARTING: "grey", PartState.DISABLED: "grey",
           PartState.DEGRADED: "amber", PartState.STALLED: "amber", PartState.STOPPED: "red",
           PartState.BAD_CREDENTIALS: "red", PartState.ERROR: "red"}
_KIND_WORDS = {"tenant_id": "Tenant id", "sign_in": "App sign-in", "directory": "Directory sync",
               "directory_changes": "Directory changes", "subscription": "Subscription",
               "service_account": "Service account", "polling": "Presence polling",
               "capacity": "Capacity", "calendar": "Calendars", "pbx_connection": "PBX connection",
               "users_subscription": "Users subscription",
               "calendar_subscriptions": "Calendar subscriptions",
               "contact_subscriptions": "Contact subscriptions",
               "teams_writes": "Teams writes", "store": "Database", "service": "m365pbx",
               "configuration": "Configuration file"}


@dataclass(frozen=True)
class Light:
    """One part as the overview shows it."""

    part: str
    title: str
    colour: str
    state: str
    since: str
    error: str | None
    fix: str | None
    aadsts: str | None
    counters: dict[str, int]
    people: int | None = None  # service accounts: people carried, of PEOPLE_PER_ACCOUNT


@dataclass
class Group:
    """The lights of one tenant, of the PBX connections, or of m365pbx itself."""

    title: str
    lights: list[Light] = field(default_factory=list)

    @property
    def colour(self) -> str:
        """The worst colour among its lights."""
        colours = {light.colour for light in self.lights}
        return next((c for c in ("red", "amber", "grey") if c in colours), "green")


def light(status: PartStatus) -> Light:
    """The light of one part."""
    segments = status.part.split("/")
    if segments[0] == "tenant" and len(segments) > 2:
        head, rest = segments[2], segments[3:]
    else:
        head, rest = status.kind, segments[1:]
    words = _KIND_WORDS.get(head) or head.replace("_", " ").capitalize()
    title = f"{words}: {'/'.join(rest)}" if rest else words
    found = _AADSTS.search(status.error or "")
    people = status.counters.get("people") if status.kind == "service_account" else None
    return Light(status.part, title, _COLOUR.get(status.state, "red"),
                 status.state.value.replace("_", " "),
                 "" if status.since is None else f"{status.since:%Y-%m-%d %H:%M:%S} UTC",
                 status.error, status.fix, None if found is None else f"AADSTS{found[1]}",
                 dict(status.counters), people)


def groups(statuses: Iterable[PartStatus]) -> list[Group]:
    """Lights per tenant (in part order), then the PBX connections, then m365pbx's own."""
    tenants: dict[str, Group] = {}
    pbx = Group("PBX connections")
    own = Group("m365pbx")
    for status in statuses:
        segments = status.part.split("/")
        if segments[0] == "tenant" and len(segments) > 2:
            tenants.setdefault(segments[1], Group(f"Tenant {segments[1]}")).lights.append(
                light(status))
        elif segments[0] == "pbx":
            pbx.lights.append(light(status))
        else:
            own.lights.append(light(status))
    found = [*tenants.values(), *(g for g in (pbx, own) if g.lights)]
    for group in found:  # the worst first; sorted() keeps the part order among equals
        group.lights = sorted(group.lights, key=lambda one: _WORST_FIRST.index(one.colour))
    return found
