"""`m365pbx sync now`: ask the running service for a full directory sync at once.

The CLI reaches the service through its HTTP API (`POST /api/v1/directory/sync`), with an
API key of the `write` scope, at the address the configuration's `listen` names.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import EXIT_FAILED, app, fail, reports_input_errors
from m365pbx.cli.words import Typer

if TYPE_CHECKING:
    import httpx

    from m365pbx.config import Settings

API_KEY_VARIABLE = "M365PBX_API_KEY"

sync_app = Typer(name="sync", help="Directory sync of the running service.",
                 no_args_is_help=True)
app.add_typer(sync_app, name="sync")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file (its 'listen' address finds the service)."),
]


def service_url(settings: Settings) -> str:
    """Where the running service answers, from the configuration's `listen`."""
    host, port = settings.listen.host, settings.listen.port
    if port == 0:
        raise fail("listen.port is 0 (a free port at each start): give the service's "
                   "address with --url")
    # An address that listens everywhere is reached on the loopback of the same family.
    wildcards = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
    host = wildcards.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _refusal(answer: httpx.Response) -> str:
    try:
        error = answer.json().get("error", {})
        return f"{answer.status_code} {error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        return f"{answer.status_code} {answer.reason_phrase}"


@sync_app.command("now")
@reports_input_errors
def now(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t",
                                               help="Only this tenant. Default: all.")] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", envvar=API_KEY_VARIABLE, show_envvar=True,
        help="An API key with the write scope (m365pbx api-key create NAME --scope write).",
    )] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="The service's address. Default: from the configuration's listen.",
    )] = None,
    config: ConfigOption = None,
) -> None:
    """Start a full directory sync in the running service at once (answers before it ends)."""
    # Imported here: `m365pbx --help` stays free of httpx and the web layer.
    import httpx

    from m365pbx.config import load_config
    from m365pbx.web.admin import PREFIX, SYNC_PATH

    if not api_key:
        raise fail(f"sync now needs an API key with the write scope: create one with "
                   f"'m365pbx api-key create admin --scope write' and give it with --api-key "
                   f"or {API_KEY_VARIABLE}")
    base = url.rstrip("/") if url else service_url(load_config(config))
    params = {"tenant": tenant} if tenant else None
    try:
        answer = httpx.post(f"{base}{PREFIX}{SYNC_PATH}", params=params, timeout=15.0,
                            headers={"Authorization": f"Bearer {api_key}"})
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach m365pbx at {base} ({type(exc).__name__}): is "
                   "'m365pbx serve' running there?", EXIT_FAILED) from None
    if answer.status_code != 202:
        raise fail(f"m365pbx at {base} refused: {_refusal(answer)}", EXIT_FAILED)
    started = answer.json().get("tenants", [])
    typer.echo(f"directory sync started for: {', '.join(started) or 'no tenant'}")
