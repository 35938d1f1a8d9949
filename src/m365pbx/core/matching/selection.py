"""Pins and exclusions: the choices a person makes by hand, resolved against the users."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from m365pbx.core.matching.directory import MicrosoftDirectory
from m365pbx.core.matching.options import MatchOptions
from m365pbx.core.matching.reasons import pinned_to_left_out

EXCLUDED = "excluded"


@dataclass
class Selection:
    """Resolved pins and exclusions, plus warnings about names that match nobody."""

    excluded_pbx: set[str] = field(default_factory=set)
    excluded_teams: set[int] = field(default_factory=set)
    pins: dict[str, int] = field(default_factory=dict)
    failed_pins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def resolve_selection(
    options: MatchOptions,
    pbx_keys: Collection[str],
    directory: MicrosoftDirectory,
    left_out: Sequence[str | None],
) -> Selection:
    """Resolve exclusions (either side) and pins (PBX h323 -> Microsoft id or UPN)."""
    selection = Selection()
    for key in sorted(options.exclude):
        position = directory.resolve(key)
        if key in pbx_keys:
            selection.excluded_pbx.add(key)
        if position is not None:
            selection.excluded_teams.add(position)
        if key not in pbx_keys and position is None:
            selection.warnings.append(
                f"exclusion '{key}' names no PBX user (h323) and no Microsoft user"
                " (id or userPrincipalName)"
            )
    for h323, reference in sorted(options.pins.items()):
        pin = f"pin {h323}={reference}"
        position = directory.resolve(reference)
        if h323 not in pbx_keys:
            selection.warnings.append(f"{pin}: no PBX user has h323 '{h323}'")
        elif h323 in selection.excluded_pbx:
            selection.warnings.append(f"{pin} is ignored: the PBX user is excluded")
        elif position is None:
            selection.warnings.append(
                f"{pin}: no Microsoft user has id or userPrincipalName '{reference}';"
                " the rules decide for this PBX user"
            )
        elif position in selection.excluded_teams:
            selection.failed_pins[h323] = pinned_to_left_out(directory.ids[position], EXCLUDED)
        elif (why := left_out[position]) is not None:
            selection.failed_pins[h323] = pinned_to_left_out(directory.ids[position], why)
        else:
            selection.pins[h323] = position
    return selection
