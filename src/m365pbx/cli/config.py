"""`m365pbx config ...`: check, show, apply and print an example of the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from m365pbx.cli.app import EXIT_BAD_INPUT, app, reports_input_errors
from m365pbx.cli.words import Typer

config_app = Typer(
    name="config",
    help="Check the configuration file, show the effective settings, print an example.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        dir_okay=False,
        help="YAML configuration file. Default: $M365PBX_CONFIG, else ./m365pbx.yaml if present.",
    ),
]


@config_app.command("check")
def check(config: ConfigOption = None) -> None:
    """Load the configuration, report every problem (exit 2) or summarise it (exit 0)."""
    from m365pbx.config import ConfigError, count, describe, load_config

    try:
        settings = load_config(config)
    except ConfigError as exc:
        for warning in exc.warnings:
            typer.echo(f"warning: {warning}", err=True)
        noun = "problem" if len(exc.problems) == 1 else "problems"
        typer.echo(f"error: the configuration has {len(exc.problems)} {noun}:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for warning in settings.warnings:
        typer.echo(f"warning: {warning}", err=True)
    source = settings.source_file or "no file: defaults and environment only"
    typer.echo(f"config OK: {count(settings)} ({source})")
    for line in describe(settings):
        typer.echo(f"  {line}")


@config_app.command("show")
@reports_input_errors
def show(config: ConfigOption = None) -> None:
    """Print the effective settings (file, environment, defaults) as YAML, secrets masked."""
    import yaml

    from m365pbx.config import load_config

    settings = load_config(config)
    typer.echo(yaml.safe_dump(settings.redacted(), sort_keys=False, allow_unicode=True), nl=False)


@config_app.command("example")
def example() -> None:
    """Print the commented example configuration."""
    from m365pbx.config import example_config_text

    typer.echo(example_config_text(), nl=False)


@config_app.command("apply")
@reports_input_errors
def apply(config: ConfigOption = None) -> None:
    """Migrate the database and write the file's declared objects into it (file-managed)."""
    from datetime import UTC, datetime

    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.declarations import declarations_from_settings
    from m365pbx.service.audit_events import configuration_applied
    from m365pbx.store import Repositories, SyncReport, mask_url, parse_database_url

    settings = load_config(config)
    declarations = declarations_from_settings(settings)

    async def work(tx: Repositories) -> SyncReport:
        report = await tx.sync_declared(declarations)
        await configuration_applied(tx, report, now=datetime.now(UTC),
                                    source=settings.source_file, actor="cli (config apply)")
        return report

    report = in_store(settings, work)
    shown = mask_url(parse_database_url(settings.database.url))
    typer.echo(f"applied {settings.source_file or 'defaults'} to {shown}:")
    for label, items in (
        ("created", report.created),
        ("updated", report.updated),
        ("adopted from the store", report.adopted),
        ("removed (no longer declared)", report.removed),
        ("unchanged", report.unchanged),
    ):
        if items:
            typer.echo(f"  {label}: {', '.join(items)}")
    if not report.changed:
        typer.echo("  nothing changed")
