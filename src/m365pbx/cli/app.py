"""The typer application and the one place that turns errors into exit codes.

Each command imports what it needs inside its function: `m365pbx --help` and light commands
such as `mapping explain` then start without loading FastAPI, SQLAlchemy or Alembic, and
`m365pbx <command> ...` registers only that command's module (tests/cli/test_startup.py
guards both).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer

from m365pbx import __version__
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

app = Typer(
    name="m365pbx",
    help="Connect Microsoft 365 presence, calendars, contacts and directory with your PBX.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"m365pbx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True,
                     help="Print the version of m365pbx and exit."),
    ] = False,
) -> None:
    """Connect Microsoft 365 presence, calendars, contacts and directory with your PBX."""


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print an error line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def reports_input_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a UserInputError raised by a command into a clear message and exit status 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except UserInputError as exc:
            raise fail(exc.describe()) from None

    return wrapper


def _register(command: str | None = None) -> None:
    # Imported here so each command module stays small and the app object exists first.
    from m365pbx.cli.commands import register

    register(command)


def main() -> None:
    """Entry point of the `m365pbx` console script."""
    _register(sys.argv[1] if len(sys.argv) > 1 else None)
    app(prog_name="m365pbx")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
