"""Calendar → PBX over SIP: a private meeting reaches an independent SIP watcher through a
real Kamailio as `<rpid:meeting/>` with the private note, never the subject (issue 22)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from m365pbx.config import load_config
from m365pbx.pbx.sip.pidf import NS_DM, NS_RPID
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, running, settings_for
from tests.e2e.test_calendar_to_pbx import MINUTE, add_event, advance_to, now
from tests.pbx.sip.conftest import kamailio, sip_tools
from tests.pbx.sip.kamailio import KamailioServer
from tests.pbx.sip.sipp import Watcher

__all__ = ["kamailio", "sip_tools"]  # fixtures used below


async def test_a_private_meeting_reaches_a_sip_watcher_without_its_subject(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, kamailio: KamailioServer,
) -> None:
    users = tmp_path / "pbx-users.csv"
    users.write_text("h323;cn;extension\nanna;Anna Schmidt;anna\nben;Ben Weber;ben\n")
    settings_for(sim_server, tmp_path, pbx_connections=[{
        "name": "office-sip", "kind": "sip", "tenant": "contoso", "users_file": str(users),
        "settings": {"server": f"127.0.0.1:{kamailio.port}", "domain": "127.0.0.1"},
        "calendar": {"enabled": True},
    }])
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"].append("calendars.read")
    path.write_text(yaml.safe_dump(data))
    settings = load_config(path, environ={})
    start = now(clock) + 10 * MINUTE
    add_event(sim, tenant, "anna@contoso.com", subject="Appraisal talk", start_in="10m",
              duration="30m", show_as="busy", sensitivity="private")
    async with running(settings, clock) as service:
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        reader = service.tenants["contoso"].parts.calendar
        assert reader is not None
        await eventually(lambda: reader.status.reads >= 2, clock, step=0.1)
        watcher = Watcher(tmp_path, kamailio.port, "anna", "meeting", timeout=60)
        await watcher.start()
        await advance_to(clock, start + 1, step=15.0)
        assert watcher.process is not None
        process = watcher.process
        await eventually(lambda: process.returncode is not None, clock, wall_timeout=90)
        run = await watcher.result()
    assert run.returncode == 0, run.output
    assert not [body for body in run.notify_bodies if "Appraisal" in body]
    bodies = [body for body in run.notify_bodies if "meeting" in body]
    assert bodies, run.notify_bodies
    person = ET.fromstring(bodies[-1]).find(f"{{{NS_DM}}}person")
    assert person is not None
    assert person.find(f"{{{NS_RPID}}}activities/{{{NS_RPID}}}meeting") is not None
    assert person.findtext(f"{{{NS_DM}}}note") == "Private appointment"
