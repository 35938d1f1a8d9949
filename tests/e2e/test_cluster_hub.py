"""The presence hub on several nodes (issue 25): a node acts for the people of the tenants
it runs now, and only for them. A node that lost a tenant writes nothing to Teams for its
people any more, nor their saved presence state, whatever still reaches it (an AMI
connection runs on every node and sees every line event); the node that took the tenant
over restores the saved sessions and acts on the same event.

Two services in this process share PostgreSQL and the simulator, as in test_cluster.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from m365pbx.app import Service
from m365pbx.core.presence import LineState
from m365pbx.sync.leases import KeeperState
from m365pbx.sync.pbx_to_teams.restore import CONFIRM_WITHIN
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, pbx_users, running, switchboard
from tests.e2e.test_cluster import cluster_url, node_settings, state  # noqa: F401 (fixture)
from tests.e2e.test_cluster_webhooks import cut_off
from tests.e2e.test_pbx_to_teams import IN_A_CALL, line, shows
from tests.e2e.test_teams_to_pbx import PEOPLE
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

WALL = 60.0  # generous wall-time bound: leases renew on real time
AVAILABLE = ("Available", "Available")


def anna(service: Service) -> int:
    return next(p.id for p in service.hub.people() if p.key == "anna")


async def saved_calls(service: Service) -> list[tuple[int, str, str]]:
    return await service.sessions.saved_sessions()


async def test_a_node_that_lost_the_tenant_leaves_teams_and_the_saved_state_to_the_new_holder(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,  # noqa: F811 - the imported fixture
) -> None:
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    b_settings = node_settings(sim_server, tmp_path, cluster_url, "node-b")
    async with running(a_settings, clock) as a:
        switchboard(a).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: state(a) is KeeperState.HOLDING and len(a.hub.people()) == 2,
                         clock, wall_timeout=WALL)
        # node-b starts before the call: what it loaded at its start knows no session.
        async with running(b_settings, clock) as b:
            switchboard(b).replace_users(pbx_users(*PEOPLE))
            await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
            assert b.hub.people() == []
            line(switchboard(a), "anna", LineState.ON_THE_PHONE, clock.now(), 1)
            await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                             step=0.2, wall_timeout=WALL)
            await a.hub.settled()
            await eventually(lambda: a.sessions.pending == 0, clock, step=0.1,
                             wall_timeout=WALL)
            anna_id = anna(a)
            assert [row[0] for row in await saved_calls(a)] == [anna_id]

            # node-a is cut off from the database: node-b takes the tenant over and, from
            # the store, knows the session node-a wrote.
            async with cut_off(a):
                await eventually(lambda: state(a) is KeeperState.LOST, clock,
                                 wall_timeout=WALL)
                await eventually(lambda: state(b) is KeeperState.HOLDING
                                 and len(b.hub.people()) == 2, clock, wall_timeout=WALL)
                restored = b.hub.state_of(anna_id)
                assert restored is not None and restored.session is not None
                assert restored.session.presence.activity.value == "InACall"
                # node-a's hub lets go of the tenant's people at once.
                assert a.hub.people() == []

                # The call ends; node-a's PBX connection still reports it (as an AMI
                # connection on every node would): node-a writes nothing to Teams, and
                # leaves the saved session alone.
                unknown = a.hub.counters["pbx_events_for_unknown_users"]
                line(switchboard(a), "anna", LineState.IDLE, clock.now(), 2)
                await eventually(
                    lambda: a.hub.counters["pbx_events_for_unknown_users"] > unknown, clock,
                    step=0.2, wall_timeout=WALL)
                for _ in range(10):
                    await clock.advance(0.5)
                    await a.hub.settled()
                assert shows(sim, "anna@contoso.com") == IN_A_CALL
                assert [row[0] for row in await saved_calls(b)] == [anna_id]
                assert a.sessions.pending == 0
                # What node-a refused is on its part `lease/tenant/contoso` (zero here: its
                # hub let go of the people before anything reached it).
                lease = a.status.get("lease/tenant/contoso")
                assert lease is not None
                assert {"refused_writes", "refused_saves"} <= set(lease.counters)

                # The same event at node-b, which runs the tenant now, clears the call
                # (well before a restored call nobody confirms would end by itself).
                started = clock.now()
                line(switchboard(b), "anna", LineState.IDLE, clock.now(), 2)
                await eventually(lambda: shows(sim, "anna@contoso.com") == AVAILABLE, clock,
                                 step=0.2, wall_timeout=WALL)
                assert (clock.now() - started).total_seconds() < CONFIRM_WITHIN
                await b.hub.settled()
                await eventually(lambda: b.sessions.pending == 0, clock, step=0.1,
                                 wall_timeout=WALL)
                assert await saved_calls(b) == []


async def test_a_node_stopping_its_tenant_work_writes_nothing_more_for_its_people(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, caplog: pytest.LogCaptureFixture,  # noqa: F811 - the imported fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    async with running(a_settings, clock) as a:
        switchboard(a).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: state(a) is KeeperState.HOLDING and len(a.hub.people()) == 2,
                         clock, wall_timeout=WALL)
        line(switchboard(a), "anna", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                         step=0.2, wall_timeout=WALL)

        # node-a loses the tenant; its last changes are still being saved (held here), so
        # its hub still holds the people: an event reaching it now is decided by nobody.
        saving = asyncio.Event()
        hand_over = a.sessions.hand_over

        async def slow_hand_over(tenant: str, *, within: float = 5.0) -> None:
            await saving.wait()
            await hand_over(tenant, within=within)

        monkeypatch.setattr(a.sessions, "hand_over", slow_hand_over)
        async with cut_off(a):
            await eventually(lambda: "contoso" not in a.cluster.fence.serving, clock,
                             wall_timeout=WALL)
            assert len(a.hub.people()) == 2
            line(switchboard(a), "anna", LineState.IDLE, clock.now(), 2)
            await eventually(lambda: a.hub.counters["not_acting"] >= 1, clock, step=0.2,
                             wall_timeout=WALL)
            for _ in range(10):
                await clock.advance(0.5)
                await a.hub.settled()
            assert shows(sim, "anna@contoso.com") == IN_A_CALL
            lease = a.status.get("lease/tenant/contoso")
            assert lease is not None and lease.counters["refused_writes"] >= 1
            told = [r.message for r in caplog.records if "does not run tenant contoso" in r.message]
            assert len(told) == 1, told
            saving.set()
            await eventually(lambda: state(a) is KeeperState.LOST, clock, wall_timeout=WALL)
            assert a.hub.people() == []
