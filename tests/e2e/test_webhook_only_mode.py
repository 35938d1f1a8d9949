"""`teams_to_pbx.mode: webhook`: notifications only; when they cannot flow, /healthz says so
(and the people are not polled behind the admin's back, as they are in `auto`)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from m365pbx.core.presence import PbxPresence
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, shown

SVC = "svc-presence@contoso.com"
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}


async def test_webhook_mode_shows_people_without_notifications_and_does_not_poll_them(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    # The simulator refuses http:// notification URLs unless told otherwise: every
    # subscription create fails, as it does for an unreachable public URL.
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), teams_to_pbx={
        "mode": "webhook", "min_poll_interval": "10s", "reconcile_interval": "5m"})
    caplog.set_level(logging.WARNING)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        parts = service.tenants["contoso"].parts
        assert parts.pool is not None
        owner = parts.pool.owners[SVC]
        await eventually(lambda: owner.last_error is not None and not owner.healthy
                         and len(owner.people) == 2, clock)
        await eventually(lambda: parts.poller.rounds >= 1, clock)  # the first reading
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: clock.now().timestamp() > 0, clock)
        for _ in range(12):  # two minutes: auto mode polls them every 10 s meanwhile
            await clock.advance(10)
        assert parts.poller.uncovered_rounds == 0
        assert shown(pbx, "anna") is not PbxPresence.DND
        teams_to_pbx = service.health()["tenants"]["contoso"]["teams_to_pbx"]
        assert teams_to_pbx["mode"] == "webhook"
        assert teams_to_pbx["without_notifications"] == 2
        assert "not polled" in teams_to_pbx["error"]
        assert teams_to_pbx["since"] is not None
        assert "2 people" in caplog.text and "not polled" in caplog.text

        # The reconciliation still reads everyone now and then (design.md rule 6).
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=10)


async def test_auto_mode_polls_people_without_notifications_and_says_so(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        parts = service.tenants["contoso"].parts
        assert parts.pool is not None
        owner = parts.pool.owners[SVC]
        await eventually(lambda: owner.last_error is not None and not owner.healthy
                         and len(owner.people) == 2, clock)
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock)
        assert parts.poller.uncovered_rounds >= 1
        teams_to_pbx = service.health()["tenants"]["contoso"]["teams_to_pbx"]
        assert teams_to_pbx["mode"] == "auto"
        assert teams_to_pbx["without_notifications"] == 2
        assert teams_to_pbx["error"] is None
