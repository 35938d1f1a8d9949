"""`m365pbx db upgrade | status | backup | restore`: database maintenance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import EXIT_FAILED, app, fail, reports_input_errors
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

db_app = Typer(
    name="db",
    help="Database maintenance: migrate the schema, show its state, back it up and restore it.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="Database URL (sqlite+aiosqlite:///path or postgresql+asyncpg://...); "
        "overrides the configuration file's database.url "
        "(default: sqlite+aiosqlite:///var/m365pbx.db).",
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        dir_okay=False,
        help="Configuration file naming the database. Default: $M365PBX_CONFIG, else "
        "./m365pbx.yaml if present.",
    ),
]


class Target:
    """The database a db command works on: its URL for the driver and for people."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.text = url.render_as_string(hide_password=False)
        self.shown = url.render_as_string(hide_password=True)


def target(database_url: str | None, config: Path | None) -> Target:
    """The database named by --database-url, else by the configuration (file, environment)."""
    from m365pbx.store import parse_database_url
    from m365pbx.store.errors import DatabaseUrlError

    if database_url is None:
        from m365pbx.config import load_config

        url, source = load_config(config).database.url, "database.url"
    else:
        url, source = database_url, "--database-url"
    try:
        return Target(parse_database_url(url))
    except DatabaseUrlError as exc:
        raise UserInputError(str(exc), source=source) from None


@db_app.command("upgrade")
@reports_input_errors
def upgrade(database_url: DatabaseUrlOption = None, config: ConfigOption = None) -> None:
    """Create the database schema or migrate it to the newest revision."""
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from m365pbx.store import ensure_sqlite_directory

    db = target(database_url, config)
    try:
        ensure_sqlite_directory(db.url)
        before, after = asyncio.run(_upgrade(db.text))
    except (OSError, SQLAlchemyError) as exc:
        raise fail(f"cannot upgrade the database at {db.shown}: {_describe(exc, db)}",
                   EXIT_FAILED) from None
    if before == after:
        typer.echo(f"database at {db.shown} is at revision {after} (already up to date)")
    else:
        typer.echo(
            f"database at {db.shown} is at revision {after} (was {before if before else 'empty'})"
        )


async def _upgrade(url: str) -> tuple[str | None, str | None]:
    """Migrate the database; return its revision before and after."""
    from m365pbx.store import database_revision, upgrade_database

    before = await database_revision(url)
    await upgrade_database(url)
    return before, await database_revision(url)


@db_app.command("status")
@reports_input_errors
def status(database_url: DatabaseUrlOption = None, config: ConfigOption = None) -> None:
    """Show the database (password hidden), its revision and the newest this version knows.

    Changes nothing: a missing SQLite file is reported (exit 1), not created.
    """
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from m365pbx.store import database_revision, head_revision
    from m365pbx.store.db import sqlite_path

    db = target(database_url, config)
    head = head_revision()
    typer.echo(f"database: {db.shown}")
    path = sqlite_path(db.url)
    if path is not None and not path.is_file():
        typer.echo(f"revision: none: there is no database file at {path.resolve()}")
        typer.echo(f"newest:   {head}")
        raise fail("no database yet: `m365pbx db upgrade` or `m365pbx serve` creates it",
                   EXIT_FAILED)
    try:
        current = asyncio.run(database_revision(db.text))
    except (OSError, SQLAlchemyError) as exc:
        raise fail(f"cannot read the database at {db.shown}: {_describe(exc, db)}",
                   EXIT_FAILED) from None
    typer.echo(f"revision: {current or 'none (empty database)'}")
    typer.echo(f"newest:   {head}")
    if current == head:
        typer.echo("up to date")
    else:
        typer.echo("needs an upgrade: run `m365pbx db upgrade` (m365pbx serve also does at start)")


@db_app.command("backup")
@reports_input_errors
def backup(
    file: Annotated[Path, typer.Argument(metavar="FILE", dir_okay=False,
                                         help="Backup file to write.")],
    database_url: DatabaseUrlOption = None,
    config: ConfigOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Back the database up while m365pbx keeps running (SQLite online backup, pg_dump).

    The secret key is not in the backup: keep it apart, a restore needs it.
    """
    from m365pbx.store.backup import BackupError, backup_database

    db = target(database_url, config)
    if file.exists() and not force:
        raise UserInputError(f"{file} exists; give --force to replace it", source="FILE")
    try:
        backup_database(db.url, file)
    except BackupError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except OSError as exc:
        raise fail(f"cannot write {file}: {exc.strerror}", EXIT_FAILED) from None
    typer.echo(f"backed up {db.shown} to {file} ({file.stat().st_size:,} bytes)")
    typer.echo("the secret key is not in the backup: keep it apart, a restore needs it",
               err=True)


@db_app.command("restore")
@reports_input_errors
def restore(
    file: Annotated[Path, typer.Argument(metavar="FILE", dir_okay=False,
                                         help="Backup made by `m365pbx db backup`.")],
    database_url: DatabaseUrlOption = None,
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y",
                                      help="Do not ask before replacing the data.")] = False,
) -> None:
    """Replace the database's contents with a backup. Stop m365pbx first.

    The stored secrets decrypt only with the key that was in use when the backup was made.
    """
    import asyncio

    from m365pbx.store import database_revision, head_revision
    from m365pbx.store.backup import BackupError, backup_kind, restore_database

    db = target(database_url, config)
    if not file.is_file():
        raise UserInputError("no such backup file", source=str(file))
    try:
        backup_kind(file)
    except BackupError as exc:
        raise UserInputError(str(exc)) from None
    if not yes and not typer.confirm(
        f"Replace everything in {db.shown} with {file}?", err=True
    ):
        raise fail("nothing restored", EXIT_FAILED)
    try:
        restore_database(db.url, file)
        revision = asyncio.run(database_revision(db.text))
    except BackupError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    typer.echo(f"restored {file} into {db.shown} (revision {revision})")
    if revision != head_revision():
        typer.echo("the backup is from an older version: `m365pbx db upgrade` (or the next "
                   "`m365pbx serve`) migrates it", err=True)


def _describe(exc: BaseException, db: Target) -> str:
    """Return the root cause of a database error in one line, with any password masked."""
    cause = getattr(exc, "orig", None) or exc
    message = " ".join(str(cause).split()) or type(cause).__name__
    password = db.url.password
    if password:
        message = message.replace(str(password), "***")
    return message
