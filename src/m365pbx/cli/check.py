"""`m365pbx check`: diagnose the configured installation before it runs, without changing it.

Exit status for scripts: 0 when every finding is ok, 1 when at least one is a warning, 2 when
at least one fails (a configuration that cannot be loaded is a failure too).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.check import Finding
    from m365pbx.config import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file to check. Default: $M365PBX_CONFIG, else "
                      "./m365pbx.yaml if present."),
]

MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


class CheckFormat(StrEnum):
    """How the findings are printed."""

    text = "text"
    json = "json"


def stored_sign_ins(settings: Settings) -> tuple[dict[str, str], str]:
    """Device-code sign-ins kept in the store, by UPN (casefolded), read only, never created;
    and why none could be read, in words ("" when the store was read)."""
    import asyncio
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from m365pbx.core.credentials import SignInMethod
    from m365pbx.store import (
        Store,
        StoreError,
        database_revision,
        head_revision,
        load_secret_box,
        mask_url,
        parse_database_url,
    )
    from m365pbx.store.db import sqlite_path
    from m365pbx.store.secrets import ENV_VAR

    upns = [account.upn for tenant in settings.tenants for account in tenant.service_accounts
            if account.sign_in is SignInMethod.DEVICE_CODE]
    if not upns:
        return {}, ""
    url = settings.database.url
    shown = mask_url(parse_database_url(url))
    path = sqlite_path(url)
    key_file = Path(settings.secrets.key_file)
    if path is not None and not path.is_file():
        return {}, f"there is no database at {path} yet"
    if ENV_VAR not in os.environ and not key_file.exists():
        return {}, f"the key file {key_file} that decrypts stored sign-ins is missing"

    async def read() -> dict[str, str]:
        revision = await database_revision(url)
        if revision != head_revision():
            raise StoreError(f"the database at {shown} is at revision {revision or 'none'}; "
                             "run 'm365pbx db upgrade'")
        store = Store.open(url, load_secret_box(key_file=key_file))
        found: dict[str, str] = {}
        try:
            async with store.transaction() as tx:
                for upn in upns:
                    row = await tx.service_accounts.find(upn)
                    token = None if row is None else tx.service_accounts.refresh_token(row)
                    if token:
                        found[upn.casefold()] = token
        finally:
            await store.close()
        return found

    try:
        return asyncio.run(read()), ""
    except StoreError as exc:
        return {}, str(exc)
    except (OSError, SQLAlchemyError) as exc:
        return {}, f"the database at {shown} cannot be read ({type(exc).__name__})"


def render_text(findings: list[Finding]) -> str:
    """The findings as lines a person reads: status, subject, words, and the fix below."""
    from m365pbx.check import worst

    lines: list[str] = []
    for finding in findings:
        code = f" [{finding.code}]" if finding.code and finding.code not in finding.message else ""
        lines.append(f"{MARKS[finding.status.value]}  {finding.subject}: {finding.message}{code}")
        if finding.fix:
            lines.append(f"      fix: {finding.fix}")
    counts = {status: sum(1 for f in findings if f.status.value == status)
              for status in ("ok", "warn", "fail")}
    lines.append(f"{worst(findings).value}: {counts['ok']} ok, {counts['warn']} warning(s), "
                 f"{counts['fail']} failure(s)")
    return "\n".join(lines)


@app.command("check")
@reports_input_errors
def check(
    config: ConfigOption = None,
    output_format: Annotated[
        CheckFormat, typer.Option("--format", help="'text' for people, 'json' for scripts."),
    ] = CheckFormat.text,
    wait: Annotated[
        float, typer.Option("--timeout",
                            help="Seconds to wait for each answer (a host, a sign-in, a PBX)."),
    ] = 10.0,
) -> None:
    """Diagnose each tenant, the public URL and each PBX connection before m365pbx runs.

    Checks that the sign-in and Graph hosts answer (through the proxy), their TLS chain, the
    clock against Microsoft's, each app's consent and the permissions the enabled features
    need, each service account (sign-in, MFA, Teams licence, 650 people each), the public
    URL's validation handshake, and each PBX connection. Changes nothing.

    Exit status: 0 all ok, 1 at least one warning, 2 at least one failure.
    """
    import asyncio

    from m365pbx.check import CheckContext, as_json, exit_status, run_checks
    from m365pbx.config import load_config

    if wait <= 0:
        raise UserInputError("--timeout must be more than 0 seconds", source="--timeout")
    settings = load_config(config)
    tokens, store_problem = stored_sign_ins(settings)
    context = CheckContext(settings, timeout=wait, refresh_tokens=tokens,
                           store_problem=store_problem)
    findings = asyncio.run(run_checks(context))
    if output_format is CheckFormat.json:
        typer.echo(json.dumps(as_json(findings), indent=2, ensure_ascii=False))
    else:
        typer.echo(render_text(findings))
    raise typer.Exit(exit_status(findings))
