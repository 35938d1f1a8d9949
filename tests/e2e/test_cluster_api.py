"""The presence API on every node (issue 25): a PBX and a switchboard talk to node-b while
node-a runs the tenant. The directory and line states node-b receives reach node-a (and
Teams) through PostgreSQL; what node-a shows is read back by node-b's GET and WebSocket.

Two services in this process share PostgreSQL and the simulator, as in test_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from m365pbx.app import Service
from m365pbx.core.presence import PbxPresence
from m365pbx.core.status import PartState
from m365pbx.pbx.api import MemoryApiKeyChecker, Scope
from m365pbx.store import Store, create_engine
from m365pbx.sync.leases import KeeperState
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, in_teams, running, switchboard
from tests.e2e.test_cluster import cluster_url, node_settings, state  # noqa: F401 (fixture)
from tests.e2e.test_cluster_webhooks import cut_off
from tests.e2e.test_pbx_to_teams import IN_A_CALL, shows
from tests.e2e.test_teams_to_pbx import PEOPLE, shown
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

WALL = 60.0  # generous wall-time bound: leases renew on real time
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}


def url(service: Service, path: str) -> str:
    listen = service.settings.listen
    return f"http://{listen.host}:{listen.port}/api/v1{path}"


def part(service: Service, expected: PartState = PartState.OK) -> dict[str, int]:
    """The node's part `api/handoff` as /healthz and `m365pbx status` show it."""
    found = service.status.get("api/handoff")
    assert found is not None and found.state is expected, found
    return dict(found.counters)


async def person(service: Service, key: str, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(url(service, f"/people/{key}"),
                                headers={"Authorization": f"Bearer {token}"})
    return answer.json() if answer.status_code == 200 else {}


async def post_line(service: Service, token: str, key: str, line_state: str,
                    sequence: int) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url(service, "/connections/switchboard/events"),
                               headers={"Authorization": f"Bearer {token}"},
                               json=[{"key": key, "line_state": line_state,
                                      "sequence": sequence}])


async def until(check: Any, clock: VirtualClock) -> None:
    """Until the awaitable check holds (the clock advancing; bounded in wall time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WALL
    while not await check():
        assert loop.time() < deadline, "the expected state was not reached in time"
        await clock.advance(0.5)
        await asyncio.sleep(0.05)


async def test_a_pbx_and_a_switchboard_on_the_standby_node_work_as_on_the_holder(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,  # noqa: F811 - the imported fixture
) -> None:
    keys = MemoryApiKeyChecker()
    pbx_key = keys.add("pbx", [Scope.WRITE, Scope.READ])
    board_key = keys.add("board", [Scope.READ])
    bearer = {"Authorization": f"Bearer {pbx_key}"}
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    b_settings = node_settings(sim_server, tmp_path, cluster_url, "node-b")
    async with running(a_settings, clock, api_keys=keys) as a:
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        async with running(b_settings, clock, api_keys=keys) as b:
            await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)

            # The PBX registers its users with node-b: node-a, which runs the tenant,
            # learns them and matches them; node-b's API then knows them as node-a shows.
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.put(url(b, "/connections/switchboard/users"), headers=bearer,
                                        json=[{"key": k, "cn": n} for k, n in PEOPLE])
            assert answer.status_code == 200, answer.text
            assert answer.json()["users"] == 2
            await eventually(lambda: len(a.hub.people()) == 2, clock, wall_timeout=WALL)
            assert b.hub.people() == []  # node-b runs nothing of the tenant
            await until(lambda: _known(b, board_key, "anna"), clock)

            # A call on the PBX, reported to node-b: Teams shows Anna in a call.
            answer = await post_line(b, pbx_key, "anna", "on-the-phone", 1)
            assert answer.status_code == 202 and answer.json()["accepted"] == 1, answer.text
            await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                             step=0.5, wall_timeout=WALL)
            # ... and node-b's API shows the line state node-a applied.
            await until(lambda: _line(b, board_key, "anna", "on-the-phone"), clock)
            answer = await post_line(b, pbx_key, "anna", "idle", 2)
            assert answer.status_code == 202 and answer.json()["accepted"] == 1
            await eventually(
                lambda: shows(sim, "anna@contoso.com") == ("Available", "Available"), clock,
                step=0.5, wall_timeout=WALL)
            # A key node-a does not follow is refused by node-b as node-a would.
            answer = await post_line(b, pbx_key, "nobody", "idle", 1)
            assert answer.json()["items"][0]["code"] == "unknown-key"

            # A switchboard on node-b sees what node-a shows: Teams → node-a → node-b.
            listen = b.settings.listen
            stream = f"ws://{listen.host}:{listen.port}/api/v1/stream?key={board_key}"
            async with websockets.connect(stream) as socket:
                snapshot = json.loads(await asyncio.wait_for(socket.recv(), WALL))
                assert {p["key"] for p in snapshot["people"]} == {"anna", "ben"}
                await in_teams(sim_server, "ben@contoso.com", DND)
                await eventually(lambda: shown(switchboard(a), "ben") is PbxPresence.DND,
                                 clock, step=0.5, wall_timeout=WALL)
                change = await _change_of(socket, "ben", "dnd")
                assert change["teams"]["availability"] == "DoNotDisturb"
            assert (await person(b, "ben", board_key))["pbx"]["presence"] == "dnd"
            assert shown(switchboard(b), "ben") is PbxPresence.DND

            counters_a, counters_b = part(a), part(b)
            assert counters_b["handed_off_users"] == 2 and counters_a["taken_users"] == 2
            assert counters_b["handed_off_events"] == 2 and counters_a["taken_events"] == 2
            assert counters_a["shown_written"] >= 2 and counters_b["shown_read"] >= 2
            assert counters_a["listening"] == counters_b["listening"] == 1
            assert counters_a["backlog"] == 0
            listen = b.settings.listen
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"http://{listen.host}:{listen.port}/metrics")).text
            assert 'm365pbx_api_handoff_total{outcome="handed_off_events"} 2.0' in metrics

            # node-b cannot reach the database: the PBX gets a 503 and sends again later,
            # instead of a 202 for a call nobody would ever see.
            reachable = b.cluster.api_everywhere.handoff.store  # type: ignore[union-attr]
            offline = Store(create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/x"), b.box)
            b.cluster.api_everywhere.handoff.store = offline  # type: ignore[union-attr]
            try:
                answer = await post_line(b, pbx_key, "anna", "on-the-phone", 3)
                assert answer.status_code == 503, answer.text
                assert answer.headers["Retry-After"] == "1"
                # The table cannot be read either: the part says so, with the reason.
                b.cluster.api_everywhere.wake()  # type: ignore[union-attr]
                await eventually(lambda: b.status.get("api/handoff").state  # type: ignore[union-attr]
                                 is PartState.DEGRADED, clock, wall_timeout=WALL)
                assert part(b, PartState.DEGRADED)["handoff_failed"] == 1
                error = b.status.get("api/handoff").error  # type: ignore[union-attr]
                assert "cannot share the presence API with other nodes" in (error or "")
            finally:
                b.cluster.api_everywhere.handoff.store = reachable  # type: ignore[union-attr]
                await offline.close()
            await eventually(lambda: b.status.get("api/handoff").state  # type: ignore[union-attr]
                             is PartState.OK, clock, wall_timeout=WALL)
            assert shows(sim, "anna@contoso.com") == ("Available", "Available")


async def _known(service: Service, token: str, key: str) -> bool:
    return bool(await person(service, key, token))


async def _line(service: Service, token: str, key: str, line_state: str) -> bool:
    return (await person(service, key, token)).get("line_state") == line_state


async def _change_of(socket: Any, key: str, presence: str) -> dict[str, Any]:
    """The stream's change message that shows `presence` for `key` (earlier ones skipped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WALL
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), deadline - loop.time()))
        found = message.get("person", {})
        if found.get("key") == key and (found.get("pbx") or {}).get("presence") == presence:
            return dict(found)


async def test_a_stale_line_state_is_dropped_and_a_new_holder_keeps_the_directory(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str, caplog: pytest.LogCaptureFixture,  # noqa: F811 - the imported fixture
) -> None:
    keys = MemoryApiKeyChecker()
    pbx_key = keys.add("pbx", [Scope.WRITE, Scope.READ])
    a_settings = node_settings(sim_server, tmp_path, cluster_url, "node-a")
    b_settings = node_settings(sim_server, tmp_path, cluster_url, "node-b")
    async with running(a_settings, clock, api_keys=keys) as a:
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        async with running(b_settings, clock, api_keys=keys) as b:
            await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
            async with httpx.AsyncClient(timeout=30) as http:
                answer = await http.put(url(b, "/connections/switchboard/users"),
                                        headers={"Authorization": f"Bearer {pbx_key}"},
                                        json=[{"key": k, "cn": n} for k, n in PEOPLE])
            assert answer.status_code == 200, answer.text
            await until(lambda: _known(b, pbx_key, "anna"), clock)

            # node-a stops taking what is handed to it (a stuck node); a call reported to
            # node-b waits in the table past its lifetime.
            assert a.cluster.api_everywhere is not None
            held = list(a.cluster.api_everywhere.tenants)
            a.cluster.api_everywhere.tenants.clear()
            b.cluster.api_everywhere.handoff.lifetime = 0.001  # type: ignore[union-attr]
            answer = await post_line(b, pbx_key, "anna", "on-the-phone", 1)
            assert answer.status_code == 202 and answer.json()["accepted"] == 1
            async with cut_off(a):
                await eventually(lambda: state(b) is KeeperState.HOLDING, clock,
                                 wall_timeout=WALL)
                a.cluster.api_everywhere.tenants.extend(held)  # node-a, standby now, reads node-b's
                # The new holder follows the people of the directory node-a saved, and never
                # applies the stale call: it drops it and says so.
                await eventually(lambda: len(b.hub.people()) == 2, clock, wall_timeout=WALL)
                await eventually(lambda: part(b)["expired_events"] == 1, clock,
                                 wall_timeout=WALL)
                assert part(b)["taken_events"] == 0
                await clock.advance(30)
                assert shows(sim, "anna@contoso.com") == ("Available", "Available")
                assert any("too old to apply" in r.message for r in caplog.records)

                # The roles reversed: a call reported to node-a now reaches node-b and Teams.
                await eventually(lambda: ("switchboard", "anna") in a.view.mirrored(), clock,
                                 wall_timeout=WALL)
                answer = await post_line(a, pbx_key, "anna", "on-the-phone", 2)
                assert answer.status_code == 202 and answer.json()["accepted"] == 1
                await eventually(lambda: shows(sim, "anna@contoso.com") == IN_A_CALL, clock,
                                 step=0.5, wall_timeout=WALL)
                assert part(b)["taken_events"] == 1
