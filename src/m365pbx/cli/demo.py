"""`m365pbx demo`: try m365pbx against a local Microsoft 365 simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.errors import UserInputError


@app.command("demo")
@reports_input_errors
def demo(
    people: Annotated[int, typer.Option(help="How many people the simulated tenant has.")] = 300,
    port: Annotated[int, typer.Option(help="Port of m365pbx's web server.")] = 8080,
    data_dir: Annotated[Path | None, typer.Option(
        help="Keep the demo's database and files here (default: a temporary folder).")] = None,
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    quiet: Annotated[bool, typer.Option(help="Do not print every presence change.")] = False,
) -> None:
    """Start a simulated Microsoft 365 tenant, m365pbx, a PBX directory and people acting."""
    import asyncio
    import contextlib

    from m365pbx.demo.runner import DemoOptions, run_demo
    from m365pbx.web.listen import listening_socket

    try:  # before the simulator starts: a second demo stops at once, with the way out
        listening_socket("127.0.0.1", port).close()
    except OSError as exc:
        raise UserInputError(f"{exc.strerror}: is another demo or m365pbx running? "
                             "Stop it, or give this demo another port: --port 8090") from None
    options = DemoOptions(people=people, port=port, directory=data_dir, duration=duration,
                          quiet=quiet)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(options))
    typer.echo("demo stopped")
