"""Issue 24 end to end: m365pbx between the simulated Microsoft 365 and a real Asterisk 22 with
SIPp phones — Teams DND lights a phone's BLF, a call shows In a call in Teams, DND set on the
PBX reaches Teams, a restarted Asterisk gets our states again, a wrong secret is explained."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from m365pbx.app import Service
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, in_teams, running, settings_for
from tests.e2e.test_pbx_to_teams import IN_A_CALL, shows
from tests.pbx.asterisk.conftest import USERS, asterisk_root, start_server
from tests.pbx.asterisk.phones import answering_phone, calling_phone
from tests.pbx.asterisk.server import AMI_SECRET, AMI_USER, AsteriskConfig, AsteriskServer, phones
from tests.pbx.sip.kamailio import free_port
from tests.pbx.sip.sipp import Watcher

__all__ = ["asterisk_root"]  # fixture used below

# Named as the simulator's Contoso users, so the caller-id names match their displayName.
PEOPLE = (("2001", "Anna Schmidt"), ("2002", "Ben Weber"), ("2003", "Watcher Phone"))
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}
AVAILABLE = ("Available", "Available")


@pytest.fixture
def ben_port() -> int:
    """Where Ben's (SIPp) phone answers calls."""
    return free_port()


@pytest.fixture
def pbx(asterisk_root: Path, ben_port: int) -> Iterator[AsteriskServer]:
    """A real Asterisk for one test: 2001 Anna, 2002 Ben (phone at ben_port), 2003 a watcher."""
    yield from start_server(asterisk_root, AsteriskConfig(
        phones(*PEOPLE, ports=[0, ben_port]), USERS))


def settings(server: RunningServer, tmp: Path, pbx: AsteriskServer, secret: str = AMI_SECRET,
             **extra: Any) -> Any:
    """m365pbx with one Asterisk connection; its users come from the PJSIP endpoints."""
    return settings_for(server, tmp, pbx_connections=[{
        "name": "office-asterisk", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "127.0.0.1", "port": pbx.ami_port, "username": AMI_USER,
                     "secret": secret, "dnd_poll_interval": "1s"},
    }], **extra)


def state_of(service: Service) -> dict[str, Any]:
    """The Asterisk connection as /healthz shows it."""
    found: dict[str, Any] = service.health()["connections"]["office-asterisk"]
    return found


async def matched(service: Service, clock: VirtualClock) -> None:
    """Until Anna and Ben (from the PJSIP endpoints) are matched people."""
    await eventually(lambda: len(service.hub.people()) == 2, clock, wall_timeout=60)


def dialog_watcher(folder: Path, pbx: AsteriskServer, extension: str, first: str,
                   second: str | None = None) -> Watcher:
    """A SIPp phone (endpoint 2003) subscribed to the BLF (Event: dialog) of `extension`."""
    watcher = Watcher(folder, pbx.sip_port, extension, first, second, timeout=60)
    text = watcher.file.read_text()
    for old, new in (("Event: presence", "Event: dialog"),
                     ("Accept: application/pidf+xml", "Accept: application/dialog-info+xml"),
                     ("sip:watcher@", "sip:2003@")):
        text = text.replace(old, new)
    watcher.file.write_text(text)
    return watcher


async def test_dnd_in_teams_lights_the_blf_and_sets_presence_state(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path, pbx: AsteriskServer,
) -> None:
    async with running(settings(sim_server, tmp_path, pbx), clock) as service:
        await matched(service, clock)
        await eventually(lambda: state_of(service)["state"] == "connected", clock)
        watcher = dialog_watcher(tmp_path, pbx, "2001", "terminated", "confirmed")
        await watcher.start()
        assert watcher.process is not None
        try:
            await watcher.received("<state>terminated</state>")  # idle before
            await in_teams(sim_server, "anna@contoso.com", DND)
            await eventually(lambda: pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY",
                             clock, wall_timeout=60)
            answer = pbx.ami("PresenceState", Provider="CustomPresence:2001")[0]
            assert answer["State"] == "dnd"
            status = pbx.ami("ExtensionState", Exten="2001", Context="internal")[0]
            assert status["StatusText"] == "Busy"
            # Read from SIPp's message log, not its scenario: the presence and the device
            # change come as two NOTIFYs back to back, and one arriving between two scenario
            # steps is answered by -aa without reaching the scenario.
            await watcher.received("<state>confirmed</state>")
        finally:
            if watcher.process.returncode is None:
                watcher.process.kill()
            await watcher.process.wait()


async def test_a_call_between_two_phones_shows_in_a_call_until_hung_up(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    pbx: AsteriskServer, ben_port: int,
) -> None:
    async with running(settings(sim_server, tmp_path, pbx), clock) as service:
        await matched(service, clock)
        assert shows(sim, "ben@contoso.com") == AVAILABLE
        callee = answering_phone(tmp_path, ben_port)
        caller = calling_phone(tmp_path, pbx.sip_port, free_port(), "2001", "2002")
        await callee.start()
        try:
            await caller.start()
            await eventually(lambda: shows(sim, "ben@contoso.com") == IN_A_CALL, clock,
                             step=0.1, wall_timeout=60)
            await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                             step=0.1, wall_timeout=60)
            await asyncio.to_thread(pbx.ami, "Hangup", Channel="/^PJSIP/2001-.*$/")
            assert await caller.finished() == 0
            assert await callee.finished() == 0
            # Cleared only after the hold-down (call_end_hold_down, 1 s by default).
            await eventually(lambda: shows(sim, "ben@contoso.com") == AVAILABLE, clock,
                             step=0.25, wall_timeout=60)
            await eventually(lambda: shows(sim, "anna@contoso.com") == AVAILABLE, clock,
                             step=0.25, wall_timeout=60)
        finally:
            await caller.stop()
            await callee.stop()


async def test_dnd_set_on_the_pbx_reaches_teams(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    pbx: AsteriskServer,
) -> None:
    async with running(settings(sim_server, tmp_path, pbx), clock) as service:
        await matched(service, clock)
        pbx.ami("DBPut", Family="DND", Key="2002", Val="YES")  # FreePBX's *78 for Ben
        await eventually(lambda: shows(sim, "ben@contoso.com")[0] == "DoNotDisturb", clock,
                         step=0.5, wall_timeout=60)
        pbx.ami("DBDel", Family="DND", Key="2002")  # *79
        await eventually(lambda: shows(sim, "ben@contoso.com") == AVAILABLE, clock,
                         step=0.5, wall_timeout=60)


async def test_a_restarted_asterisk_gets_teams_presence_again(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path, pbx: AsteriskServer,
) -> None:
    async with running(settings(sim_server, tmp_path, pbx), clock) as service:
        await matched(service, clock)
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY",
                         clock, wall_timeout=60)
        await asyncio.to_thread(pbx.stop)
        await eventually(lambda: state_of(service)["state"] == "degraded", clock,
                         wall_timeout=60)
        (pbx.folder / "lib" / "astdb.sqlite3").unlink()  # a fresh Asterisk knows nothing
        await asyncio.to_thread(pbx.start)
        await eventually(lambda: state_of(service)["state"] == "connected", clock,
                         wall_timeout=60)
        await eventually(lambda: pbx.getvar("DEVICE_STATE(Custom:2001-teams)") == "BUSY",
                         clock, wall_timeout=60)
        assert pbx.ami("PresenceState", Provider="CustomPresence:2001")[0]["State"] == "dnd"


async def test_a_wrong_ami_secret_is_a_clear_error(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path, pbx: AsteriskServer,
) -> None:
    wrong = "not-the-secret"
    async with running(settings(sim_server, tmp_path, pbx, secret=wrong), clock) as service:
        await eventually(lambda: state_of(service)["state"] == "bad_credentials", clock,
                         wall_timeout=60)
        error = state_of(service)["error"]
        assert "refused the AMI login of user 'm365pbx'" in error
        assert "manager.conf" in error
        assert wrong not in error and wrong not in str(service.health())
        part = next(p for p in service.health()["parts"] if p["part"] == "pbx/office-asterisk")
        assert part["state"] != "ok"
