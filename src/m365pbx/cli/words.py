"""Help texts that name what an option takes in words (TEXT, FILE), never as Python types.

Typer shows an option's annotation as its type: `<list[str]>`, `<bool>`, `<Path>`. An admin
reads "FILE" or "TEXT"; a flag takes nothing. Every command and group of the CLI is built with
the classes below, so a new option gets a word without anyone remembering to add one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from m365pbx.cli.plain_values import pass_plain_values

_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "NUMBER",
    "path": "PATH",
    "Path": "PATH",
    "file": "FILE",
    "directory": "FOLDER",
    "dir": "FOLDER",
    "datetime": "DATE",
    "UUID": "ID",
    "uuid": "ID",
}
F = TypeVar("F", bound=Callable[..., Any])
_TYPE = re.compile(r"^<(?P<inner>.*)>(?P<more>\.\.\.)?$")


def word_for(shown: str | None) -> str:
    """Turn a type as Typer shows it (`<list[str]>`, `<file>`, `<a|b>`) into a word."""
    if not shown:
        return ""
    found = _TYPE.match(shown)
    if found is None:
        return shown
    inner = found["inner"]
    while inner.startswith("list[") and inner.endswith("]"):
        inner = inner[len("list[") : -1]
    if "|" in inner:
        return inner
    return _WORDS.get(inner, inner.upper())


def _display(param: Any, ctx: Any) -> str | None:
    show = getattr(param, "display_type_rich", None)
    return show(ctx) if callable(show) else None


def in_words(param: Any, ctx: Any) -> Any:
    """Give an option or argument a worded type; flags (and --help) show none."""
    if getattr(param, "_m365pbx_worded", False):
        return param
    pass_plain_values(param)
    option = getattr(param, "param_type_name", "") == "option"
    if getattr(param, "is_flag", False):
        word = ""
    elif getattr(param, "metavar", None):
        # An argument's metavar is its name in the help: no need to say it twice.
        word = str(param.metavar) if option else ""
    else:
        word = word_for(_display(param, ctx))
    if option:
        param.metavar = word
    # Typer shows an argument's type beside its name whatever its metavar says.
    param.display_type_rich = lambda ctx, word=word: word
    param._m365pbx_worded = True
    return param


def _whole_first_line(command: Any, limit: int) -> str:
    """A command's summary in the list of commands: wrapped there, never cut off at '...'."""
    text = command.short_help or command.help or ""
    return str(text).strip().split("\n\n")[0].replace("\n", " ")


class WordsCommand(TyperCommand):
    """A command whose help names option types in words."""

    def get_short_help_str(self, limit: int = 45) -> str:
        """The whole first paragraph of the command's help."""
        return _whole_first_line(self, limit)

    def get_params(self, ctx: Any) -> list[Any]:
        """The command's parameters, --help included, each with its type in words."""
        return [in_words(param, ctx) for param in super().get_params(ctx)]


class WordsGroup(TyperGroup):
    """A group of commands whose help names option types in words."""

    def get_short_help_str(self, limit: int = 45) -> str:
        """The whole first paragraph of the group's help."""
        return _whole_first_line(self, limit)

    def get_params(self, ctx: Any) -> list[Any]:
        """The group's parameters, --help included, each with its type in words."""
        return [in_words(param, ctx) for param in super().get_params(ctx)]


class Typer(typer.Typer):
    """typer.Typer whose commands and groups show their option types in words."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", WordsGroup)
        # Plain help and errors: Rich's boxes cost ~120 ms of CPU at every `--help`, more
        # than everything else the CLI needs to start (goal: under 0.3 s, issue 20).
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        """Register a command (see typer.Typer.command) built as a WordsCommand."""
        kwargs.setdefault("cls", WordsCommand)
        register: Callable[[F], F] = super().command(*args, **kwargs)
        return register
