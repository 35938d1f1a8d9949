"""The `sim_server` fixture: the simulator served over HTTPS on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from m365sim.server import RunningServer, run_server
from m365sim.simulator import Simulator


@pytest.fixture
async def sim_server(sim: Simulator, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """`sim` on https://127.0.0.1:<free port> with its own CA (`ca_file`), in the test's loop.

    The simulator's base URL becomes the server's URL and `sim.run()` runs meanwhile.
    """
    async with run_server(sim, cert_dir=tmp_path / "tls") as running:
        yield running
