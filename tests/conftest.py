"""Fixtures every test folder may use: the simulator on a virtual clock (see tests/sim);
and a watchdog that ends a test process stuck in one test, with every thread's traceback."""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Iterator

import pytest

from tests.sim.conftest import client, clock, sim, tenant
from tests.sim.conftest_server import sim_server

__all__ = ["client", "clock", "sim", "sim_server", "tenant"]

STUCK_AFTER = 900.0
"""Seconds after which a test counts as stuck: the longest (the 3-minute soak, the 3-node
scale test) take about 4 minutes on a busy machine. A stuck test would otherwise hold CI
until its time limit and say nothing; this way its process ends with the tracebacks on
stderr, and pytest-xdist reports the test as failed and goes on."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Watch one test's call; end the process with tracebacks if it is stuck."""
    stderr = sys.__stderr__  # the process's own: pytest captures sys.stderr
    assert stderr is not None
    faulthandler.dump_traceback_later(STUCK_AFTER, exit=True, file=stderr)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
