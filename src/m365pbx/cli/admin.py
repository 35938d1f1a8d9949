"""`m365pbx admin create | password | list`: the local administrators of the admin UI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import app, fail, reports_input_errors
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.store import Repositories
    from m365pbx.store.tables import AdminUser

admin_app = Typer(help="Manage the admin UI's administrators (admin.enabled in the "
                       "configuration turns the UI on).", no_args_is_help=True)
app.add_typer(admin_app, name="admin")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False, help="Configuration file (database, key)."),
]
NameArgument = Annotated[str, typer.Argument(help="The admin's name, e.g. 'alice'.")]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                                "standard input instead of asking for it."),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


def _check_name(name: str) -> str:
    from m365pbx.config.fields import check_slug

    try:
        return check_slug(name)
    except ValueError as exc:
        raise UserInputError(str(exc), source="NAME") from None


@admin_app.command("create")
@reports_input_errors
def create(name: NameArgument, password_stdin: StdinOption = False,
           config: ConfigOption = None) -> None:
    """Add an admin; the password is asked for (twice) or read from stdin, only its hash kept."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.service.admin_signin import create_admin
    from m365pbx.store.errors import ConflictError

    name = _check_name(name)
    settings = load_config(config)
    password = _password(password_stdin)

    async def work(tx: Repositories) -> None:
        await create_admin(tx, name, password, now=datetime.now(UTC), actor="cli")

    try:
        in_store(settings, work)
    except ValueError as exc:
        raise fail(str(exc)) from None
    except ConflictError as exc:
        raise fail(f"{exc}; `m365pbx admin password {name}` sets a new password") from None
    typer.echo(f"created admin {name!r}")
    if not settings.admin.enabled:
        typer.echo("the admin UI is off: set admin.enabled: true in the configuration",
                   err=True)


@admin_app.command("password")
@reports_input_errors
def password(name: NameArgument, password_stdin: StdinOption = False,
             config: ConfigOption = None) -> None:
    """Set a new password for an admin (and unlock them)."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.service.admin_signin import set_admin_password

    settings = load_config(config)
    secret = _password(password_stdin)

    async def work(tx: Repositories) -> bool:
        return await set_admin_password(tx, name, secret, now=datetime.now(UTC), actor="cli")

    try:
        found = in_store(settings, work, create=False)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if not found:
        raise fail(f"there is no admin named {name!r}; create one: m365pbx admin create {name}")
    typer.echo(f"new password set for admin {name!r}")


@admin_app.command("list")
@reports_input_errors
def list_(config: ConfigOption = None) -> None:
    """List the admins: created, last sign-in, locked until."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config

    settings = load_config(config)

    async def work(tx: Repositories) -> list[AdminUser]:
        return await tx.admin_users.list_all()

    rows = in_store(settings, work, create=False)
    if not rows:
        typer.echo("no admins; create one with: m365pbx admin create NAME")
    for row in rows:
        last = f"{row.last_sign_in_at:%Y-%m-%d %H:%M} UTC" if row.last_sign_in_at else "never"
        locked = (f", locked until {row.locked_until:%Y-%m-%d %H:%M} UTC"
                  if row.locked_until and row.locked_until > datetime.now(UTC) else "")
        typer.echo(f"{row.name}  created {row.created_at:%Y-%m-%d %H:%M} UTC, "
                   f"last sign-in {last}{locked}")
