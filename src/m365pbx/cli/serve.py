"""`m365pbx serve`: run the service with a configuration file until stopped."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.errors import UserInputError


@app.command("serve")
@reports_input_errors
def serve(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", dir_okay=False,
        help="YAML configuration file. Default: $M365PBX_CONFIG, else ./m365pbx.yaml.")] = None,
) -> None:
    """Run m365pbx: directory sync, presence both ways, the presence API, until SIGINT/SIGTERM."""
    import asyncio
    import gc
    import signal

    from m365pbx.app import Service
    from m365pbx.config import DEFAULT_CONFIG_FILE, find_config_file, load_config
    from m365pbx.logs import configure_logging, settings_secrets
    from m365pbx.store import StoreError, load_secret_box

    file = find_config_file(config, os.environ)
    if file is None or not file.is_file():
        tried = file or DEFAULT_CONFIG_FILE
        raise UserInputError(
            f"no configuration file at {tried.resolve()}: give one with --config FILE (or "
            f"$M365PBX_CONFIG); `m365pbx config example > m365pbx.yaml` writes a commented "
            "example to start from")
    settings = load_config(file)
    configure_logging(settings.logging.level, settings.logging.format.value,
                      secrets=settings_secrets(settings))
    say = _teller(settings.logging.format.value)
    try:
        box = load_secret_box(key_file=settings.secrets.key_file)
    except StoreError as exc:
        raise UserInputError(str(exc)) from None
    service = Service(settings, box)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, service.stop)
        applying: set[asyncio.Task[object]] = set()

        def reapply() -> None:
            # SIGHUP: the configuration file again, as the admin UI's "Apply" does.
            task = loop.create_task(service.reconfigure.apply("SIGHUP"))
            applying.add(task)
            task.add_done_callback(applying.discard)

        loop.add_signal_handler(signal.SIGHUP, reapply)
        runner = asyncio.create_task(service.run())
        started = asyncio.create_task(service.started.wait())
        await asyncio.wait({runner, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if service.started.is_set():
            # Said once it runs: a start refused (the database claimed by another node, say)
            # ends with its error alone.
            say(f"m365pbx listening on http://{settings.listen.host}:{settings.listen.port}")
        # Objects made at start live as long as the process: keep the garbage collector from
        # scanning them again and again (full collections stalled the loop for 50–100 ms).
        gc.freeze()
        await runner

    asyncio.run(main())
    say("m365pbx stopped")


def _teller(log_format: str) -> Callable[[str], None]:
    """How serve tells the admin it started and stopped: a log event in JSON, else a line."""
    if log_format == "json":
        return logging.getLogger("m365pbx.serve").warning
    return lambda text: typer.echo(text, err=True)
