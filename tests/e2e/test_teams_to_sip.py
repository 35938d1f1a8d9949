"""Issue 13 end to end: Do Not Disturb set in (simulated) Teams reaches an independent SIP
watcher through m365pbx and a real Kamailio presence server."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from m365pbx.pbx.sip.pidf import NS_DM, NS_RPID
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from tests.e2e.harness import eventually, in_teams, running, settings_for
from tests.pbx.sip.conftest import kamailio, sip_tools
from tests.pbx.sip.kamailio import KamailioServer
from tests.pbx.sip.sipp import Watcher

__all__ = ["kamailio", "sip_tools"]  # fixtures used below


async def test_dnd_in_teams_reaches_a_sip_watcher(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path, kamailio: KamailioServer,
) -> None:
    users = tmp_path / "pbx-users.csv"
    users.write_text("h323;cn;extension\nanna;Anna Schmidt;anna\nben;Ben Weber;ben\n")
    settings = settings_for(sim_server, tmp_path, pbx_connections=[{
        "name": "office-sip", "kind": "sip", "tenant": "contoso", "users_file": str(users),
        "settings": {"server": f"127.0.0.1:{kamailio.port}", "domain": "127.0.0.1"},
    }])
    async with running(settings, clock) as service:
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        watcher = Watcher(tmp_path, kamailio.port, "anna", "dnd", timeout=60)
        await watcher.start()
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}})
        assert watcher.process is not None
        process = watcher.process
        await eventually(lambda: process.returncode is not None, clock, wall_timeout=90)
        run = await watcher.result()
    assert run.returncode == 0, run.output
    bodies = [body for body in run.notify_bodies if "dnd" in body]
    assert bodies, run.notify_bodies
    root = ET.fromstring(bodies[-1])
    assert root.get("entity") == "sip:anna@127.0.0.1"
    other = root.findtext(f"{{{NS_DM}}}person/{{{NS_RPID}}}activities/{{{NS_RPID}}}other")
    assert other == "dnd"
