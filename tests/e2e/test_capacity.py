"""More people than the service accounts can carry: said in /healthz, /metrics and the log
with the number of accounts missing (issue 18, item 11; it was polled silently)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, free_port, pbx_users, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks


async def test_people_beyond_the_accounts_capacity_are_reported(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pool = service.tenants["contoso"].parts.pool
        assert pool is not None
        # Graph's 650 per account, scaled down: one account carries one of the two people.
        pool.capacity = 1
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: pool.shortfall().unassigned == 1, clock)
        health = service.health()["tenants"]["contoso"]
        assert health["capacity"] == {
            "people": 2, "service_accounts": 1, "per_account": 1, "beyond_capacity": 1,
            "accounts_missing": 1, "since": health["capacity"]["since"],
            "error": "1 of 2 people exceed what 1 service account(s) can carry (1 each): "
                     "their presence is polled, not notified. Add 1 service account(s)."}
        assert health["capacity"]["since"] is not None
        assert service.health()["ok"] is False
        assert service.registry.get_sample_value(
            "m365pbx_people_beyond_capacity", {"tenant": "contoso"}) == 1
        assert service.registry.get_sample_value(
            "m365pbx_service_accounts_missing", {"tenant": "contoso"}) == 1
        assert "Add 1 service account(s)" in caplog.text
        await eventually(
            lambda: service.health()["tenants"]["contoso"]["state"].startswith("degraded: 1 of 2"),
            clock)
