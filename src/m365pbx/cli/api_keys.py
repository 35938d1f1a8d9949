"""`m365pbx api-key create | list | revoke`: keys of the presence API's clients."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.store import Repositories
    from m365pbx.store.tables import ApiClient

api_key_app = Typer(
    help="Create, list and revoke the API keys of presence API clients (switchboards, PBX apps).",
    no_args_is_help=True,
)
app.add_typer(api_key_app, name="api-key")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False, help="Configuration file (database, key)."),
]
NameArgument = Annotated[str, typer.Argument(help="Name of the client, e.g. 'switchboard'.")]


def _check_name(name: str) -> str:
    from m365pbx.config.fields import check_slug

    try:
        return check_slug(name)
    except ValueError as exc:
        raise UserInputError(str(exc), source="NAME") from None


@api_key_app.command("create")
@reports_input_errors
def create(
    name: NameArgument,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            "-s",
            help="'read' (people, presence, stream), 'write' (events, users, directory "
            "sync) or 'contacts' (contact search, caller lookup); repeat for several. "
            "Default: read.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create a client and print its key once (only a hash of it is stored)."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.pbx.api.keys import Scope, parse_scopes
    from m365pbx.service.api_keys import create_api_client

    name = _check_name(name)
    try:
        scopes = parse_scopes(scope or [Scope.READ.value])
    except ValueError as exc:
        raise UserInputError(str(exc), source="--scope") from None
    settings = load_config(config)

    async def work(tx: Repositories) -> str:
        return await create_api_client(tx, name, scopes, now=datetime.now(UTC), actor="cli")

    key = in_store(settings, work)
    shown = ", ".join(sorted(s.value for s in scopes))
    # The key alone on stdout (KEY=$(m365pbx api-key create ...)), the advice on stderr.
    typer.echo(f"created API client {name!r} with scopes: {shown}", err=True)
    typer.echo(key)
    typer.echo(
        "store this key now: m365pbx keeps only a hash of it and cannot show it again",
        err=True,
    )


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


@api_key_app.command("list")
@reports_input_errors
def list_(config: ConfigOption = None) -> None:
    """List the clients with their scopes and when each key was last used (never the keys)."""
    from rich.console import Console
    from rich.table import Table

    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config

    settings = load_config(config)

    async def work(tx: Repositories) -> list[ApiClient]:
        return await tx.api_clients.list_all()

    rows = in_store(settings, work, create=False)
    if not rows:
        typer.echo("no API clients; create one with: m365pbx api-key create NAME")
        return
    table = Table(title="API clients", title_justify="left")
    for column in ("name", "key id", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            f"m365pbx_{row.key_id}…",
            ", ".join(row.scopes),
            _when(row.created_at),
            _when(row.last_used_at),
            _when(row.revoked_at),
        )
    Console(width=120).print(table)


@api_key_app.command("revoke")
@reports_input_errors
def revoke(name: NameArgument, config: ConfigOption = None) -> None:
    """Revoke a client's key: requests with it are refused from now on."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.service.api_keys import revoke_api_client

    settings = load_config(config)

    async def work(tx: Repositories) -> bool:
        return await revoke_api_client(tx, name, now=datetime.now(UTC), actor="cli")

    if in_store(settings, work):
        typer.echo(f"revoked the API key of {name!r}")
    else:
        typer.echo(f"the API key of {name!r} was revoked already")
