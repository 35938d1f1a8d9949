"""Fixtures every test folder may use: the simulator on a virtual clock (see tests/sim)."""

from tests.sim.conftest import client, clock, sim, tenant
from tests.sim.conftest_server import sim_server

__all__ = ["client", "clock", "sim", "sim_server", "tenant"]
