"""A Graph outage while calls go on: /healthz and /metrics say Teams writes are held, and
the call shows in Teams once Graph answers again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from m365pbx.app import Service
from m365pbx.core.presence import LineState
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, settings_for, switchboard
from tests.e2e.test_pbx_to_teams import IN_A_CALL, QUIET, line, shows, user_id, wait_for_people
from tests.e2e.test_teams_to_pbx import PEOPLE


async def scrape(service: Service) -> tuple[dict[str, Any], dict[str, float]]:
    """/healthz and the m365pbx_teams_* samples of /metrics, over HTTP as a monitor reads them."""
    base = f"http://127.0.0.1:{service.settings.listen.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        health = (await http.get("/healthz")).json()
        text = (await http.get("/metrics")).text
    samples = {}
    for row in text.splitlines():
        if row.startswith("m365pbx_teams_"):
            name, value = row.rsplit(" ", 1)
            samples[name] = float(value)
    return health, samples


async def test_an_outage_is_reported_and_the_call_reaches_teams_when_graph_returns(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    async with running(settings_for(sim_server, tmp_path, **QUIET), clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await wait_for_people(service, clock)
        health, samples = await scrape(service)
        assert health["teams_writes"]["state"] == "writing"
        assert samples["m365pbx_teams_writes_held"] == 0

        outage = FaultRule(status=503, path_prefix=f"/v1.0/users/{user_id(sim, 'anna')}/")
        sim.faults.add_fault(outage)
        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: service.teams_sink.status().down, clock, step=0.5)
        health, samples = await scrape(service)
        writes = health["teams_writes"]
        assert writes["state"] == "held: Graph is unavailable"
        assert writes["since"] is not None and writes["waiting_people"] == 1
        assert "503" in writes["last_error"] or "unavailable" in writes["last_error"].lower()
        assert samples["m365pbx_teams_writes_held"] == 1
        assert samples["m365pbx_teams_writes_waiting"] == 1
        assert samples['m365pbx_teams_writes_total{kind="unavailable"}'] >= 1
        assert shows(sim, "anna@contoso.com") == ("Available", "Available")

        sim.faults.clear_faults()
        await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock, step=1.0)
        health, samples = await scrape(service)
        assert health["teams_writes"]["state"] == "writing"
        # Recovered: the outage's error is history, and the state says since when it writes.
        assert health["teams_writes"]["last_error"] is None
        assert health["teams_writes"]["since"] > writes["since"]
        assert samples["m365pbx_teams_writes_held"] == 0
        assert samples['m365pbx_teams_writes_total{kind="recoveries"}'] == 1
