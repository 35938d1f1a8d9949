"""Several nodes on one PostgreSQL database (issue 25): a tenant's directory sync and
polling run on the one node holding the tenant's lease; another takes over when it stops
or is cut off from the database, and the old holder's writes under its stale epoch are
refused.

Two services in this process share PostgreSQL and the simulator; their leases run on real
time (the database's clock), their Graph work on the shared virtual clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from m365pbx.app import Service
from m365pbx.config import Settings
from m365pbx.core.matching import MatchResult
from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.core.status import PartState
from m365pbx.service.leases import Ownership, StoreLeases
from m365pbx.service.persistence import StorePeople
from m365pbx.store import FencedOut, MatchStatus, Store, create_engine
from m365pbx.sync.leases import KeeperState
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, in_teams, pbx_users, running, settings_for, switchboard
from tests.e2e.test_part_status import status_cli
from tests.e2e.test_pbx_to_teams import IN_A_CALL, line, shows
from tests.e2e.test_teams_to_pbx import PEOPLE, shown
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

LEASE = "lease/tenant/contoso"
WALL = 60.0  # generous wall-time bound: leases renew on real time


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


def node_settings(server: RunningServer, tmp: Path, url: str, node: str) -> Settings:
    """One node's settings: the same installation, its own listen port and node id."""
    own = tmp / node
    own.mkdir()
    return settings_for(server, own, database={"url": url},
                        secrets={"key_file": str(tmp / "secret.key")},
                        cluster={"enabled": True, "node_id": node, "lease_lifetime": "3s"})


def state(service: Service) -> KeeperState:
    return service.cluster.keepers["contoso"].state


def rounds(service: Service) -> int:
    return service.tenants["contoso"].parts.poller.rounds


async def matched_people(service: Service) -> int:
    async with service.store.transaction() as tx:
        return len([p for p in await tx.people.summaries_for_connection(
            (await tx.pbx_connections.find("switchboard")).id,  # type: ignore[union-attr]
            status=MatchStatus.MATCHED)])


async def test_one_node_polls_and_another_takes_over_without_stale_writes(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path, cluster_url: str,
) -> None:
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    b_settings = node_settings(sim_server, tmp_path, cluster_url, "node-b")
    async with running(a_settings, clock) as a:
        switchboard(a).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: state(a) is KeeperState.HOLDING and len(a.hub.people()) == 2,
                         clock, wall_timeout=WALL)
        async with running(b_settings, clock) as b:
            switchboard(b).replace_users(pbx_users(*PEOPLE))
            await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)

            # Only node-a polls: a change in Teams reaches the PBX through it.
            await in_teams(sim_server, "anna@contoso.com",
                           {"preferred": {"availability": "Busy", "activity": "Busy"}})
            await eventually(lambda: shown(switchboard(a), "anna") is PbxPresence.BUSY, clock,
                             wall_timeout=WALL)
            assert rounds(a) > 0 and rounds(b) == 0 and b.hub.people() == []
            # The standby node's tenant parts are off here, not "starting" for ever.
            assert {s.state for s in b.status.snapshot() if s.part.startswith("tenant/")} == {
                PartState.DISABLED}
            polling = a.status.get("tenant/contoso/polling")
            assert polling is not None and polling.state is PartState.OK
            held, standby = a.status.get(LEASE), b.status.get(LEASE)
            assert held is not None and standby is not None
            assert (held.state, held.counters["held"], held.counters["epoch"]) == (
                PartState.OK, 1, 1)
            assert (standby.state, standby.counters["held"], standby.counters["epoch"]) == (
                PartState.OK, 0, 1)
            # `m365pbx status`, from any host sharing the database: who holds what.
            config = a_settings.source_file
            assert config is not None
            held_by = json.loads((await status_cli(config, "--format", "json")).stdout)["leases"]
            assert [(j["job"], j["holder"], j["epoch"], j["live"]) for j in held_by] == [
                ("tenant/contoso", "node-a", 1, True)]
            text = await status_cli(config)
            assert "tenant/contoso: held by node-a, epoch 1" in text.stdout
            stale = a.tenants["contoso"].ownership.lease  # type: ignore[union-attr]
            assert stale is not None and stale.epoch == 1

            # node-a is cut off from the database (a network partition, a paused process):
            # it stops its tenant work before its lease can expire, and node-b takes the
            # tenant over once it has.
            keeper = a.cluster.keepers["contoso"]
            reachable = keeper.port
            unreachable = Store(create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/x"),
                                a.box)
            keeper.port = StoreLeases(unreachable)
            await eventually(lambda: state(a) is KeeperState.LOST, clock, wall_timeout=WALL)
            assert "could not renew the lease (epoch 1) in time" in (keeper.last_error or "")
            assert keeper.losses == 1
            lost = a.status.get(LEASE)
            assert lost is not None and lost.state is PartState.DEGRADED
            await eventually(lambda: state(b) is KeeperState.HOLDING and len(b.hub.people())
                             == 2, clock, wall_timeout=WALL)
            b_lease = b.tenants["contoso"].ownership.lease  # type: ignore[union-attr]
            assert b_lease is not None and b_lease.epoch == 2
            a_rounds = rounds(a)
            await in_teams(sim_server, "anna@contoso.com",
                           {"preferred": {"availability": "DoNotDisturb",
                                          "activity": "DoNotDisturb"}})
            await eventually(lambda: shown(switchboard(b), "anna") is PbxPresence.DND, clock,
                             wall_timeout=WALL)
            assert rounds(a) == a_rounds  # node-a no longer polls

            # node-a resumes with its stale epoch: the database refuses its writes.
            resumed = Ownership(a.store, "tenant/contoso")
            resumed.lease = stale
            with pytest.raises(FencedOut, match="'node-b' holds it at epoch 2"):
                await StorePeople(a.store, "contoso", resumed).replace(
                    "switchboard", MatchResult((), (), ()), {})
            assert await matched_people(a) == 2

            # The partition heals: node-a sees node-b's lease and stands by.
            keeper.port = reachable
            await unreachable.close()
            await eventually(lambda: state(a) is KeeperState.STANDBY, clock, wall_timeout=WALL)

        # node-b stops (a rolling restart): it releases the lease, node-a takes over at
        # its next try instead of after the expiry.
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        lease = a.tenants["contoso"].ownership.lease  # type: ignore[union-attr]
        assert lease is not None and lease.epoch == 3
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Available", "activity": "Available"}})
        await eventually(lambda: shown(switchboard(a), "anna") is PbxPresence.ONLINE, clock,
                         wall_timeout=WALL)




async def test_a_standby_node_leaves_the_holder_s_calls_in_teams_alone(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,
) -> None:
    # Found while building issue 25: a standby node loads the saved presence sessions too,
    # never sees their people (it runs no directory sync) and, after the orphan grace,
    # cleared the holder's live "In a call" in Teams.
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    b_settings = node_settings(sim_server, tmp_path, cluster_url, "node-b")
    async with running(a_settings, clock) as a:
        pbx = switchboard(a)
        pbx.replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: state(a) is KeeperState.HOLDING and len(a.hub.people()) == 2,
                         clock, wall_timeout=WALL)
        line(pbx, "anna", LineState.ON_THE_PHONE, clock.now(), 1)
        await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                         wall_timeout=WALL)
        await eventually(lambda: a.sessions.pending == 0, clock, wall_timeout=WALL)
        async with running(b_settings, clock) as b:
            await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
            guard = b.sessions.guard
            await eventually(lambda: guard.counters["left_to_other_node"] >= 1, clock,
                             step=10.0, wall_timeout=WALL)
            assert guard.counters["orphans_cleared"] == 0
            assert shows(sim, "anna@contoso.com") == IN_A_CALL
