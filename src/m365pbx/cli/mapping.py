"""`m365pbx mapping show | explain | export | import`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.core.mapping import MappingRuleSet
    from m365pbx.store import Repositories

mapping_app = Typer(help="Show, explain, export and import presence mappings.")
app.add_typer(mapping_app, name="mapping")

ConnectionOption = Annotated[
    str | None,
    typer.Option(
        "--connection",
        help="PBX connection whose stored tenant and connection overlays apply (needs --config).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False, help="Configuration file (database, key)."),
]
OverlayOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--overlay",
        "-o",
        help="Mapping file laid over the defaults (repeat: tenant first, then connection).",
    ),
]


def effective_rules(
    overlays: list[Path] | None, connection: str | None = None, config: Path | None = None
) -> MappingRuleSet:
    """Defaults ← the connection's stored tenant and connection overlays ← overlay files."""
    from m365pbx.core.mapping import DEFAULT_RULES, apply_overlays

    layers = []
    if connection is not None:
        from m365pbx.cli.store_access import in_store
        from m365pbx.config import load_config
        from m365pbx.mapping_sources import stored_overlays

        settings = load_config(config)
        layers = in_store(
            settings, lambda tx: stored_overlays(tx, connection), create=False
        )
    if overlays:
        from m365pbx.mapping_files import load_overlay

        layers += [load_overlay(path) for path in overlays]
    return apply_overlays(DEFAULT_RULES, *layers)


@mapping_app.command("show")
@reports_input_errors
def show(
    overlay: OverlayOption = None, connection: ConnectionOption = None, config: ConfigOption = None
) -> None:
    """Print the effective rules of both directions and of the calendar."""
    from rich.console import Console
    from rich.table import Table

    from m365pbx.core.mapping import MappingRuleSet, rule_set_to_document
    from m365pbx.core.mapping.document import find_unreachable_rules

    rules = effective_rules(overlay, connection, config)
    console = Console()
    teams = Table(title="Teams → PBX", title_justify="left")
    for column in ("#", "availability", "activity", "PBX presence", "from"):
        teams.add_column(column)
    for number, t2p in enumerate(rules.teams_to_pbx, 1):
        teams.add_row(
            str(number),
            t2p.availability.value if t2p.availability else "any",
            t2p.activity.value if t2p.activity else "any",
            t2p.pbx.value,
            t2p.origin,
        )
    console.print(teams)
    pbx = Table(title="PBX → Teams", title_justify="left")
    for column in ("#", "line state", "PBX presence", "writes", "lifetime", "from"):
        pbx.add_column(column)
    for number, p2t in enumerate(rules.pbx_to_teams, 1):
        document_rule = rule_set_to_document(MappingRuleSet((), (p2t,)))["pbx_to_teams"][0]
        pbx.add_row(
            str(number),
            p2t.line_state.value if p2t.line_state else "any",
            p2t.pbx_presence.value if p2t.pbx_presence else "any",
            f"{p2t.channel.value}: {document_rule[p2t.channel.value]}",
            document_rule.get("lifetime", "-"),
            p2t.origin,
        )
    console.print(pbx)
    calendar = Table(title="Calendar → PBX", title_justify="left")
    for column in ("#", "event showAs", "PBX presence", "from"):
        calendar.add_column(column)
    for number, c2p in enumerate(rules.calendar_to_pbx, 1):
        calendar.add_row(str(number), c2p.show_as.value, c2p.pbx.value, c2p.origin)
    console.print(calendar)
    for warning in find_unreachable_rules(rules):
        typer.echo(f"warning: {warning}", err=True)


E = TypeVar("E", bound=Enum)


def _parse(value: str | None, lookup: Callable[[str], E | None], kind: type[E], option: str) -> (
    E | None
):
    if value is None:
        return None
    parsed = lookup(value)
    if parsed is None:
        names = ", ".join(str(member.value) for member in kind)
        raise UserInputError(f"{option}: unknown value {value!r}; expected one of: {names}")
    return parsed


@mapping_app.command("explain")
@reports_input_errors
def explain(
    availability: Annotated[str | None, typer.Option(help="Teams availability, e.g. Busy")] = None,
    activity: Annotated[str | None, typer.Option(help="Teams activity, e.g. InACall")] = None,
    line_state: Annotated[str | None, typer.Option(help="PBX line state, e.g. held")] = None,
    pbx_presence: Annotated[str | None, typer.Option(help="PBX presence, e.g. dnd")] = None,
    show_as: Annotated[str | None, typer.Option(
        help="A calendar event's showAs, e.g. tentative")] = None,
    overlay: OverlayOption = None,
    connection: ConnectionOption = None,
    config: ConfigOption = None,
) -> None:
    """Say what a presence turns into on the other side, and which rule decided."""
    from m365pbx.core.mapping import Channel, CompiledMapping
    from m365pbx.core.presence import (
        Activity,
        Availability,
        LineState,
        PbxPresence,
        ShowAs,
        TeamsPresence,
        lookup_activity,
        lookup_availability,
        lookup_line_state,
        lookup_pbx_presence,
        lookup_show_as,
    )

    compiled = CompiledMapping(effective_rules(overlay, connection, config))
    teams_given = availability is not None or activity is not None
    pbx_given = line_state is not None or pbx_presence is not None
    if [teams_given, pbx_given, show_as is not None].count(True) != 1:
        raise UserInputError(
            "give one of: a Teams presence (--availability and/or --activity), a PBX state "
            "(--line-state and/or --pbx-presence), or a calendar event's --show-as"
        )
    if show_as is not None:
        parsed_show_as = _parse(show_as, lookup_show_as, ShowAs, "--show-as")
        assert parsed_show_as is not None
        typer.echo(compiled.calendar_to_pbx(parsed_show_as).value)
        typer.echo(f"because {compiled.explain_calendar(parsed_show_as).reason}")
        typer.echo("(whether such events count at all is the connection's calendar: "
                   "settings; see docs/calendar.md)")
        return
    if teams_given:
        parsed_availability = _parse(availability, lookup_availability, Availability,
                                     "--availability")
        parsed_activity = _parse(activity, lookup_activity, Activity, "--activity")
        presence = TeamsPresence(
            parsed_availability or Availability.PRESENCE_UNKNOWN,
            parsed_activity or Activity.PRESENCE_UNKNOWN,
        )
        result = compiled.explain_teams(presence)
        typer.echo(compiled.to_pbx(presence).value)
        typer.echo(f"because {result.reason}")
        return
    line = _parse(line_state, lookup_line_state, LineState, "--line-state") or LineState.IDLE
    pbx = _parse(pbx_presence, lookup_pbx_presence, PbxPresence, "--pbx-presence")
    pbx = pbx or PbxPresence.ONLINE
    for channel in Channel:
        write = compiled.to_teams(channel, line, pbx)
        target = "nothing (ours cleared)" if write.presence is None else str(write.presence)
        typer.echo(f"{channel.value}: {target}")
        typer.echo(f"  because {compiled.explain_pbx(channel, line, pbx).reason}")


@mapping_app.command("export")
@reports_input_errors
def export(
    overlay: OverlayOption = None,
    connection: ConnectionOption = None,
    config: ConfigOption = None,
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
) -> None:
    """Write the effective rules as a mapping document (YAML, or JSON for *.json)."""
    from m365pbx.core.mapping import rule_set_to_document
    from m365pbx.mapping_files import dump_document

    rules = effective_rules(overlay, connection, config)
    text = dump_document(rule_set_to_document(rules), output)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)


@mapping_app.command("import")
@reports_input_errors
def import_(
    file: Annotated[Path, typer.Argument(help="Mapping document (YAML or JSON)")],
    connection: Annotated[
        str | None, typer.Option(help="Store it as this PBX connection's overrides")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Store it as this tenant's overrides")] = None,
    config: ConfigOption = None,
) -> None:
    """Check a mapping document; with --connection or --tenant, store it as the overrides."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.core.mapping import DEFAULT_RULES, apply_overlays
    from m365pbx.core.mapping.document import find_unreachable_rules
    from m365pbx.mapping_files import load_overlay, read_document

    overlay = load_overlay(file)
    merged = apply_overlays(DEFAULT_RULES, overlay)
    for warning in find_unreachable_rules(merged):
        typer.echo(f"warning: {warning}", err=True)
    verb = "replace" if overlay.replace else "amend"
    summary = (
        f"{len(overlay.teams_to_pbx)} Teams → PBX, {len(overlay.pbx_to_teams)} "
        f"PBX → Teams and {len(overlay.calendar_to_pbx)} calendar rules {verb} the defaults"
    )
    if connection is None and tenant is None:
        typer.echo(f"{file}: valid; {summary}")
        return
    if connection is not None and tenant is not None:
        raise UserInputError("give --connection or --tenant, not both")
    document = read_document(file)
    settings = load_config(config)
    target = f"PBX connection {connection!r}" if connection else f"tenant {tenant!r}"

    async def store_it(tx: Repositories) -> None:
        repository = tx.pbx_connections if connection else tx.tenants
        row = await repository.set_mapping_overrides(str(connection or tenant), document)
        await tx.audit.append(
            at=datetime.now(UTC), actor="cli", action="mapping.import",
            object_type="pbx_connection" if connection else "tenant", object_id=row.id,
            details={"file": str(file), "summary": summary},
        )

    in_store(settings, store_it)
    typer.echo(f"{file}: stored as the mapping of {target}; {summary}")
