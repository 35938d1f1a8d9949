"""PBX → Teams at scale: 500 people start calls at once while Graph throttles presence
writes; every one of them ends up "In a call", none is lost, and batches carry the burst."""

from __future__ import annotations

from pathlib import Path

from m365pbx.core.presence import LineState
from m365pbx.pbx.base import LineStateEvent, PbxUser
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.faults import FaultRule
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, running, settings_for, switchboard
from tests.e2e.test_pbx_to_teams import QUIET

PEOPLE = 500


async def test_500_calls_at_once_under_a_429_storm_all_show_in_a_call(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    generated = generate_users(sim, tenant, users=PEOPLE, seed=14, teams_share=1.0,
                               disabled_share=0.0)
    connection = {"name": "switchboard", "kind": "api", "tenant": "contoso",
                  "matching": {"rules": ["h323=mailNickname"]}}
    settings = settings_for(sim_server, tmp_path, pbx_connections=[connection], **QUIET)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users([PbxUser(u.mail_nickname or "", {"cn": u.display_name})
                           for u in generated])
        await eventually(lambda: len(service.hub.people()) == PEOPLE, clock, step=0.5,
                         wall_timeout=30)
        # The storm: most presence writes are refused with 429 and a Retry-After.
        sim.faults.add_fault(FaultRule(status=429, path_prefix="/v1.0/users/", rate=0.7,
                                       retry_after_s=3))
        now = clock.now()
        pbx.submit([LineStateEvent(u.mail_nickname or "", LineState.ON_THE_PHONE, now, 1)
                    for u in generated])

        def in_a_call() -> int:
            answers = sim.presence.read_many(tenant, [u.id for u in generated])
            return sum(1 for a in answers
                       if (a["availability"], a["activity"]) == ("Busy", "InACall"))

        await eventually(lambda: in_a_call() == PEOPLE, clock, step=0.5, wall_timeout=45)

        def set_presence_requests() -> list[dict]:
            return [r for r in sim.faults.requests()
                    if r["path"].endswith("/presence/setPresence")]

        # The simulator logs a request once its answer has gone out, a moment after the new
        # presence is readable: wait until the log holds every accepted write (a second write
        # of anyone would still show as more than PEOPLE below).
        await eventually(lambda: sum(1 for r in set_presence_requests()
                                     if r["status"] != 429) >= PEOPLE,
                         clock, step=0.5, wall_timeout=45)
        # Judged on what Graph (the simulator) saw, not on our own counters: the counter of
        # answered writes can trail the simulator's state by a batch when `eventually` fires.
        assert service.hub.counters["writes_failed"] == 0
        writes = set_presence_requests()
        refused = sum(1 for r in writes if r["status"] == 429)
        batched = sum(1 for r in writes if r["batch"])
        print(f"{len(writes)} setPresence, {refused} refused with 429, {batched} in batches")
        assert refused > 0  # the storm did hit
        assert batched > 0  # and the burst went out in $batch requests
        assert len(writes) - refused == PEOPLE  # each person written once, none twice
