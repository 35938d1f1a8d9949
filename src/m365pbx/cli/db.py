"""`m365pbx db ...`: database maintenance (migrations)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from m365pbx.cli.app import app, fail, reports_input_errors
from m365pbx.errors import UserInputError
from m365pbx.store.db import (
    DEFAULT_DATABASE_URL,
    ensure_sqlite_directory,
    mask_url,
    parse_database_url,
)
from m365pbx.store.errors import DatabaseUrlError
from m365pbx.store.migrate import database_revision, upgrade_database

EXIT_FAILED = 1

db_app = typer.Typer(
    name="db",
    help="Database maintenance: create or migrate the schema.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="M365PBX_DATABASE__URL",
        show_envvar=True,
        help=f"Database URL (sqlite+aiosqlite:///path or postgresql+asyncpg://...). "
        f"Default: {DEFAULT_DATABASE_URL}",
    ),
]


@db_app.command("upgrade")
@reports_input_errors
def upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Create the database schema or migrate it to the newest revision."""
    url = database_url or DEFAULT_DATABASE_URL
    try:
        parsed = parse_database_url(url)
    except DatabaseUrlError as exc:
        raise UserInputError(str(exc), source="--database-url") from None
    text = parsed.render_as_string(hide_password=False)
    shown = mask_url(parsed)
    try:
        ensure_sqlite_directory(parsed)
        before, after = asyncio.run(_upgrade(text))
    except (OSError, SQLAlchemyError) as exc:
        raise fail(
            f"cannot upgrade the database at {shown}: {_describe(exc, url)}", EXIT_FAILED
        ) from None
    if before == after:
        typer.echo(f"database at {shown} is at revision {after} (already up to date)")
    else:
        typer.echo(
            f"database at {shown} is at revision {after} (was {before if before else 'empty'})"
        )


async def _upgrade(url: str) -> tuple[str | None, str | None]:
    """Migrate the database; return its revision before and after."""
    before = await database_revision(url)
    await upgrade_database(url)
    return before, await database_revision(url)


def _describe(exc: BaseException, url: str) -> str:
    """Return the root cause of a database error in one line, with any password masked."""
    cause = getattr(exc, "orig", None) or exc
    message = " ".join(str(cause).split()) or type(cause).__name__
    password = make_url(url).password
    if password:
        message = message.replace(str(password), "***")
    return message
