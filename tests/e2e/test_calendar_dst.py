"""Calendar → PBX across Europe's daylight-saving change (29 March 2026, 01:00 UTC), on a
virtual clock that starts the day before (issue 22: a weekly series keeps its local time)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from m365pbx.config import load_config
from m365pbx.core.presence import PbxPresence
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, running, switchboard
from tests.e2e.test_calendar_to_pbx import (
    add_event,
    advance_to,
    calendar_settings,
    shown,
    started_with_calendars,
    until_shown,
)


@pytest.fixture
def clock() -> VirtualClock:
    """Saturday 28 March 2026, 06:00 UTC: Berlin is on CET (UTC+1) until Sunday 01:00 UTC."""
    return VirtualClock(datetime(2026, 3, 28, 6, 0, tzinfo=UTC))


async def test_a_weekly_series_keeps_its_berlin_time_across_the_change(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    calendar_settings(sim_server, tmp_path, poll_interval="1h")
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    # Teams presence is not under test: slow polling keeps two virtual days quick.
    data["teams_to_pbx"]["min_poll_interval"] = "10m"
    path.write_text(yaml.safe_dump(data))
    settings = load_config(path, environ={})
    # Saturdays and Mondays at 10:00 Berlin time: the Saturday before the change is 09:00 UTC,
    # the Monday after it 08:00 UTC.
    add_event(sim, tenant, "anna@contoso.com", subject="Jour fixe",
              start="2026-03-28T10:00:00", time_zone="W. Europe Standard Time",
              duration="30m", show_as="busy",
              recurrence={"type": "weekly", "days": ["saturday", "monday"], "count": 4})
    before = datetime(2026, 3, 28, 9, 0, tzinfo=UTC).timestamp()
    after = datetime(2026, 3, 30, 8, 0, tzinfo=UTC).timestamp()
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        await started_with_calendars(service, clock, 2)
        await advance_to(clock, before - 2, step=300.0)
        assert shown(pbx, "anna")[0] is PbxPresence.ONLINE
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - before <= 1.0
        assert shown(pbx, "anna") == (PbxPresence.MEETING, "Jour fixe")
        await advance_to(clock, before + 1800 + 300, step=60.0)
        # Teams itself shows her InAMeeting while the meeting runs (the simulator derives it
        # from the calendar, as Teams does), read here every 10 minutes: the PBX is back
        # online once the calendar's end and the next read of Teams are both past.
        await eventually(lambda: shown(pbx, "anna")[0] is PbxPresence.ONLINE, clock,
                         step=10.0, wall_timeout=120)
        assert clock.now().timestamp() <= before + 1800 + 600 + 300
        # Monday: 10:00 in Berlin is now 08:00 UTC, an hour earlier in UTC than on Saturday.
        await advance_to(clock, after - 2, step=300.0)
        assert shown(pbx, "anna")[0] is PbxPresence.ONLINE
        at = await until_shown(pbx, "anna", PbxPresence.MEETING, clock)
        assert 0 <= at - after <= 1.0
