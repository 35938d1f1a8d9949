"""`m365pbx audit`: who changed what and when, newest first (the store's audit trail)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors

if TYPE_CHECKING:
    from m365pbx.store import Repositories
    from m365pbx.store.tables import AuditEvent


class Format(StrEnum):
    """How `audit` prints."""

    TEXT = "text"
    JSON = "json"


@app.command("audit")
@reports_input_errors
def audit(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000,
                                       help="How many events, newest first.")] = 50,
    object_type: Annotated[str | None, typer.Option(
        "--object", help="Only events about this kind of object: admin, api_client, "
                         "configuration, subscription, mapping ...")] = None,
    output: Annotated[Format, typer.Option("--format", help="text or json")] = Format.TEXT,
    config: Annotated[Path | None, typer.Option("--config", "-c", dir_okay=False,
                                                help="Configuration file (database).")] = None,
) -> None:
    """Show the audit trail: configuration applied, sign-ins, API keys, takeovers, edits."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config

    settings = load_config(config)

    async def work(tx: Repositories) -> list[AuditEvent]:
        return await tx.audit.list_recent(limit=limit, object_type=object_type)

    events = in_store(settings, work, create=False)
    if output is Format.JSON:
        typer.echo(json.dumps([{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                "object_type": e.object_type, "object_id": e.object_id,
                                "details": e.details} for e in events], indent=2))
        return
    if not events:
        typer.echo("the audit trail is empty")
    for e in events:
        what = e.object_type + (f" {e.object_id}" if e.object_id else "")
        details = ", ".join(f"{k}: {v}" for k, v in e.details.items())
        typer.echo(f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {e.actor}  {e.action}  {what}"
                   + (f"  ({details})" if details else ""))
