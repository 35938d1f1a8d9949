"""The last directory sync's matching per tenant and PBX connection, for the admin UI:
counts, the ambiguous PBX users with their candidates and the unmatched ones, with reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from m365pbx.service.tenant import TenantRuntime

SHOWN = 500  # rows per list: a big directory stays a page


@dataclass(frozen=True)
class Row:
    """One PBX or Teams user that needs a look: its key, name, candidates and the reason."""

    side: str
    key: str
    name: str
    reason: str
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConnectionMatching:
    """One PBX connection's last matching (None: not matched yet)."""

    tenant: str
    connection: str
    summary: Mapping[str, object] | None
    ambiguous: list[Row] = field(default_factory=list)
    unmatched: list[Row] = field(default_factory=list)


def matching_views(tenants: Mapping[str, TenantRuntime]) -> list[ConnectionMatching]:
    """Every connection's last matching, tenant by tenant."""
    found = []
    for name, runtime in tenants.items():
        for directory in runtime.parts.directory.connections:
            result = directory.result
            if result is None:
                found.append(ConnectionMatching(name, directory.name, None))
                continue

            def pbx_name(key: str) -> str:
                user = directory.users.get(key)  # noqa: B023 - used before the loop moves on
                return "" if user is None else (user.value("cn") or "")

            found.append(ConnectionMatching(
                name, directory.name, result.summary(),
                [Row("pbx", a.pbx, pbx_name(a.pbx), a.reason, a.candidates)
                 for a in result.ambiguous[:SHOWN]],
                [Row(u.side, u.key, pbx_name(u.key) if u.side == "pbx" else "", u.reason)
                 for u in result.unmatched[:SHOWN]]))
    return found
