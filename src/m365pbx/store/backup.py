"""Backups of the database: SQLite's online backup API, PostgreSQL through pg_dump/pg_restore.

A backup holds the tables only; the secret key that decrypts the stored secrets is not in it
(keep the two apart). A backup file is written under a temporary name and renamed when
complete, with mode 0600: it holds personal data and encrypted secrets.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL

from m365pbx.store.db import parse_database_url, sqlite_path
from m365pbx.store.errors import StoreError

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
PG_TIMEOUT_S = 3600.0
"""pg_dump and pg_restore are given this long (a large database, a slow disk)."""


class BackupError(StoreError):
    """A backup or restore could not be made; the message says why (never a password)."""


def backup_database(url: str | URL, target: Path) -> None:
    """Copy the database at `url` into the file `target` while it stays in use."""
    parsed = parse_database_url(url)
    path = sqlite_path(parsed)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        if path is not None:
            _sqlite_backup(path, partial)
        elif parsed.get_backend_name() == "postgresql":
            _run_pg("pg_dump", parsed, ["--format=custom", f"--file={partial}"])
        else:
            raise BackupError("an in-memory SQLite database cannot be backed up")
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def restore_database(url: str | URL, source: Path) -> None:
    """Replace the contents of the database at `url` with the backup in `source`."""
    parsed = parse_database_url(url)
    path = sqlite_path(parsed)
    kind = backup_kind(source)
    if path is not None:
        if kind != "sqlite":
            raise BackupError(f"{source} is a {kind} backup; the database is SQLite")
        _sqlite_restore(source, path)
    elif parsed.get_backend_name() == "postgresql":
        if kind != "postgresql":
            raise BackupError(f"{source} is a {kind} backup; the database is PostgreSQL")
        _check_pg_dump(source)
        _run_pg("pg_restore", parsed, ["--clean", "--if-exists", "--no-owner",
                                       "--no-privileges", "--single-transaction",
                                       "--exit-on-error", str(source)])
    else:
        raise BackupError("an in-memory SQLite database cannot be restored")


def backup_kind(source: Path) -> str:
    """'sqlite' or 'postgresql': which database a backup file was made from."""
    try:
        with source.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"cannot read {source}: {exc.strerror}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_DUMP_MAGIC):
        return "postgresql"
    raise BackupError(f"{source} is not a backup made by `m365pbx db backup` "
                      "(neither a SQLite database nor a pg_dump custom-format file)")


def _sqlite_backup(path: Path, target: Path) -> None:
    if not path.is_file():
        raise BackupError(f"there is no database at {path}")
    # Read-only URI: a missing or mistyped path is an error, not a new empty database.
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            with contextlib.closing(copy):
                source.backup(copy)
                # A single file: the copy needs no -wal beside it.
                copy.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise BackupError(f"cannot back up {path}: {exc}") from None
    finally:
        source.close()


def _sqlite_restore(source: Path, path: Path) -> None:
    backup = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in backup.execute("SELECT name FROM sqlite_master")}
        if "alembic_version" not in tables:
            raise BackupError(f"{source} is a SQLite database but not an m365pbx backup "
                              "(no alembic_version table)")
        path.parent.mkdir(parents=True, exist_ok=True)
        database = sqlite3.connect(path, timeout=30)
        try:
            with contextlib.closing(database):
                backup.backup(database)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot restore into {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot read {source}: {exc}") from None
    finally:
        backup.close()


def _check_pg_dump(source: Path) -> None:
    listing = _run_tool("pg_restore", ["--list", str(source)], env=None, what=str(source))
    if "alembic_version" not in listing:
        raise BackupError(f"{source} is a pg_dump file but not an m365pbx backup "
                          "(no alembic_version table)")


def _run_pg(tool: str, url: URL, arguments: list[str]) -> None:
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)  # not on the command line: ps shows that
    _run_tool(tool, [f"--dbname={libpq_conninfo(url)}", *arguments], env=env,
              what=url.render_as_string(hide_password=True))


def _run_tool(tool: str, arguments: list[str], *, env: dict[str, str] | None, what: str) -> str:
    program = shutil.which(tool)
    if program is None:
        raise BackupError(f"{tool} is not installed: install PostgreSQL's client tools "
                          "(Debian: postgresql-client) of the server's version or newer")
    try:
        # The program is PostgreSQL's own tool found on PATH; the arguments are ours.
        done = subprocess.run([program, *arguments], env=env, capture_output=True,  # noqa: S603
                              text=True, timeout=PG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise BackupError(f"{tool} did not finish within {PG_TIMEOUT_S:.0f} s ({what})") from None
    if done.returncode != 0:
        detail = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise BackupError(f"{tool} failed for {what}: {detail}")
    return done.stdout


def libpq_conninfo(url: URL) -> str:
    """The URL as libpq takes it (postgresql://user@host:port/db), without the password."""
    plain = url.set(drivername="postgresql", password=None, query={})
    text = plain.render_as_string(hide_password=False)
    ssl = url.query.get("sslmode") or url.query.get("ssl")
    if isinstance(ssl, str) and ssl:
        text += f"?sslmode={ssl}"
    return text
