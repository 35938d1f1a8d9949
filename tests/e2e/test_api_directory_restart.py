"""The directory a PBX app uploaded survives a restart of m365pbx: with no new upload, the
people are matched again and Teams changes reach the PBX side for them."""

from __future__ import annotations

from pathlib import Path

from m365pbx.core.presence import PbxPresence
from m365pbx.service.api_directory import StoredApiConnection
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import PEOPLE, shown


async def test_uploaded_users_are_matched_again_after_a_restart_without_an_upload(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path)
    uploaded = pbx_users(*PEOPLE)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        assert isinstance(pbx, StoredApiConnection)
        pbx.replace_users(uploaded)
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        await eventually(lambda: pbx.keeper.writes == 1 and not pbx.keeper.pending, clock)
        # Saved on the upload, not only by the clean stop below.
        async with service.store.transaction() as tx:
            row = await tx.pbx_connections.find("switchboard")
            assert row is not None
            assert [r.key for r in await tx.api_users.load(row.id)] == ["anna", "ben"]

    async with running(settings, clock) as service:
        pbx = switchboard(service)
        # Nobody uploads: the saved directory answers from the start.
        assert await pbx.list_users() == uploaded
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        assert sorted(p.key for p in service.hub.people()) == ["anna", "ben"]
        assert pbx.watches("anna") and pbx.watches("ben")  # their line events are taken
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
        assert shown(pbx, "ben") is PbxPresence.ONLINE
        assert pbx.keeper.restored == 2 and pbx.keeper.writes == 0
