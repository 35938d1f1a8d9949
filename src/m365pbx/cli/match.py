"""`m365pbx match`: match PBX users with Microsoft users from two files and report the result."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from rich.console import Console

    from m365pbx.core.matching import MatchResult, PbxUser

CSV_COLUMNS = ("part", "pbx", "teams", "side", "key", "candidates", "rule", "reason")


class OutputFormat(StrEnum):
    """How the report is written."""

    table = "table"
    json = "json"
    csv = "csv"


@app.command("match")
@reports_input_errors
def match_command(
    teams: Annotated[
        Path, typer.Option("--teams", metavar="FILE",
                           help="Microsoft users: JSON saved from GET /v1.0/users.")
    ],
    pbx: Annotated[Path, typer.Option("--pbx", metavar="FILE",
                                      help="PBX users: CSV export or JSON list.")],
    rule: Annotated[
        list[str] | None,
        typer.Option(metavar="PBXFIELD=MSFIELD",
                     help="A matching rule; repeat for more, tried in the order given. "
                     "Default: cn=displayName."),
    ] = None,
    strip_domain: Annotated[
        bool, typer.Option("--strip-domain", help="Compare user@domain.tld as user.")
    ] = False,
    no_casefold: Annotated[
        bool, typer.Option("--no-casefold", help="Compare upper and lower case as different.")
    ] = False,
    no_unicode_normalize: Annotated[
        bool,
        typer.Option(
            "--no-unicode-normalize", help="Keep accents, full-width forms and extra whitespace."
        ),
    ] = False,
    phone_region: Annotated[
        str | None, typer.Option(help="Region for numbers without country code, e.g. DE.")
    ] = None,
    pin: Annotated[
        list[str] | None, typer.Option(metavar="H323=MSID",
                                       help="This PBX user is that Microsoft user (repeat).")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave out a user: h323, Microsoft id or UPN.")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(help="Only Microsoft users in this group (id; from each user's memberOf)."),
    ] = None,
    no_licence_filter: Annotated[
        bool,
        typer.Option("--no-licence-filter", help="Keep users without an enabled Teams plan."),
    ] = False,
    encoding: Annotated[
        str | None, typer.Option(help="Encoding of the PBX file when not UTF-8, e.g. cp1252.")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", help="Report format.")
    ] = OutputFormat.table,
    output: Annotated[
        Path | None, typer.Option(metavar="FILE",
                                  help="Write the report to this file instead of stdout.")
    ] = None,
) -> None:
    """Match PBX users with Microsoft users and report matched, unmatched and ambiguous users."""
    from m365pbx.core.matching import DEFAULT_RULES, MatchOptions, match_users, parse_rule
    from m365pbx.directory_files import load_pbx_users, load_teams_users

    # The files become a million small objects and no reference cycles: each automatic
    # collection would walk all of them again (0.3 s of the 0.5 s that loading 50,000
    # Graph users takes). Reference counting still frees everything.
    with _collector_paused():
        teams_file = load_teams_users(teams)
        pbx_file = load_pbx_users(pbx, encoding)
        rules = tuple(parse_rule(text, pbx_file.columns) for text in rule) if rule else None
        options = MatchOptions(
            rules=rules or DEFAULT_RULES,
            casefold=not no_casefold,
            unicode_normalize=not no_unicode_normalize,
            strip_domain=strip_domain,
            phone_region=phone_region,
            pins=_parse_pins(pin or []),
            exclude=frozenset(exclude or ()),
            allowed_groups=frozenset(group) if group else None,
            require_teams_licence=not no_licence_filter,
        )
        with _progress_on_terminal() as progress:
            result = match_users(pbx_file.users, teams_file.users, options, progress)
        warnings = [*teams_file.warnings, *result.warnings]
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)
        if output_format is OutputFormat.table and output is None:
            from rich.console import Console

            _print_table(Console(), result, _Names(pbx_file.users, teams_file.users))
            return
        if output_format is OutputFormat.table:
            text = _table_text(result, _Names(pbx_file.users, teams_file.users))
        else:
            text = _render(output_format, result, warnings)
        if output is None:
            sys.stdout.write(text)
        else:
            _write_report(output, text)


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse_pins(texts: Sequence[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for text in texts:
        h323, equals, target = (part.strip() for part in text.partition("="))
        if not equals or not h323 or not target:
            raise UserInputError(
                "a pin is written H323=MSID, e.g. anna=87d349ed-44d7-43e1-9a83-5f2406dee5bd",
                location=f"--pin {text!r}",
            )
        if pins.get(h323, target) != target:
            raise UserInputError(
                f"PBX user '{h323}' is pinned to two Microsoft users: {pins[h323]} and {target}",
                location=f"--pin {text!r}",
            )
        pins[h323] = target
    return pins


@contextmanager
def _progress_on_terminal() -> Iterator[Callable[[int, int], None] | None]:
    """Yield a progress callback drawing a bar on stderr, or None when stderr is no terminal."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("matching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("matching", total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report


class _Names:
    """Human names for keys: a PBX user's long name, a Microsoft user's display name."""

    def __init__(self, pbx_users: Sequence[PbxUser], teams_users: Sequence[dict[str, object]]):
        self.pbx = {user.key: user.value("cn") or "" for user in pbx_users}
        self.teams = {
            str(user["id"]): str(user.get("displayName") or user.get("userPrincipalName") or "")
            for user in teams_users
        }

    def of(self, side: str, key: str) -> str:
        """Return the name shown next to a key of the given side."""
        return (self.pbx if side == "pbx" else self.teams).get(key, "")


def _render(output_format: OutputFormat, result: MatchResult, warnings: list[str]) -> str:
    if output_format is OutputFormat.json:
        from m365pbx.cli.match_json import json_report

        return json_report(result, warnings)
    return _csv_text(result)


def _table_text(result: MatchResult, names: _Names) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    _print_table(Console(file=buffer, width=160, color_system=None), result, names)
    return buffer.getvalue()


def _csv_text(result: MatchResult) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for match in result.matched:
        writer.writerow(
            {"part": "matched", "pbx": match.pbx, "teams": match.teams, "rule": match.rule}
        )
    for item in result.unmatched:
        writer.writerow(
            {"part": "unmatched", "side": item.side, "key": item.key, "reason": item.reason}
        )
    for entry in result.ambiguous:
        writer.writerow(
            {
                "part": "ambiguous",
                "pbx": entry.pbx,
                "candidates": " ".join(entry.candidates),
                "reason": entry.reason,
            }
        )
    return buffer.getvalue()


def _print_table(console: Console, result: MatchResult, names: _Names) -> None:
    from rich.markup import escape
    from rich.table import Table

    def teams_cell(key: str) -> str:
        name = names.of("teams", key)
        return f"{name}\n[dim]{key}[/dim]" if name else key

    matched = Table(title=f"Matched ({len(result.matched)})", title_justify="left")
    matched.add_column("PBX user", overflow="fold")
    matched.add_column("long name")
    matched.add_column("Microsoft user", overflow="fold")
    matched.add_column("rule", no_wrap=True)
    for match in result.matched:
        pbx_name = escape(names.of("pbx", match.pbx))
        matched.add_row(escape(match.pbx), pbx_name, teams_cell(match.teams), match.rule)
    ambiguous = Table(title=f"Ambiguous ({len(result.ambiguous)})", title_justify="left")
    ambiguous.add_column("PBX user", overflow="fold")
    ambiguous.add_column("long name")
    ambiguous.add_column("candidates", overflow="fold")
    ambiguous.add_column("reason", overflow="fold", ratio=2)
    for entry in result.ambiguous:
        candidates = "\n".join(teams_cell(key) for key in entry.candidates)
        pbx_name = escape(names.of("pbx", entry.pbx))
        ambiguous.add_row(escape(entry.pbx), pbx_name, candidates, escape(entry.reason))
    unmatched = Table(title=f"Unmatched ({len(result.unmatched)})", title_justify="left")
    unmatched.add_column("side", no_wrap=True)
    unmatched.add_column("user", overflow="fold")
    unmatched.add_column("reason", overflow="fold", ratio=2)
    for item in result.unmatched:
        user = teams_cell(item.key) if item.side == "teams" else escape(item.key)
        if item.side == "pbx" and names.of("pbx", item.key):
            user += f"\n{escape(names.of('pbx', item.key))}"
        unmatched.add_row(item.side, user, escape(item.reason))
    for table in (matched, ambiguous, unmatched):
        console.print(table)
    console.print(_summary_line(result), markup=False, highlight=False)


def _summary_line(result: MatchResult) -> str:
    counts = result.summary()
    line = (
        f"{counts['pbx_users']} PBX users, {counts['teams_users']} Microsoft users: "
        f"{counts['matched']} matched, {counts['ambiguous']} ambiguous, "
        f"{counts['unmatched_pbx']} PBX users and {counts['unmatched_teams']} Microsoft users"
        " unmatched"
    )
    if result.left_out:
        left_out = ", ".join(f"{count} {why}" for why, count in sorted(result.left_out.items()))
        line += f"; Microsoft users left out: {left_out}"
    return line


def _write_report(path: Path, text: str) -> None:
    """Write the finished report; it is rendered in full first, so bad input never creates it."""
    try:
        path.write_text(text, encoding="utf-8", newline="")
    except OSError as exc:
        raise UserInputError(f"cannot write the report: {exc.strerror}", source=str(path)) from exc
