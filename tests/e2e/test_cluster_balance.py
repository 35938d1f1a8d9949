"""Balancing the jobs among nodes (issue 25): four tenants, nodes joining and leaving.

Three services in this process share one PostgreSQL database and the simulator, which
serves four tenants. Node A alone holds all four; node B joins and, once it has run for a
lease lifetime, the two share 2/2; node C joins: 2/1/1 (the first node by id gets the one
left over); B stops: A and C share 2/2 and every tenant is held again; then nothing changes
hands for several lease lifetimes (no flapping). `m365pbx status` and the admin UI's
Cluster page show the nodes and who holds what. Leases run on real time (3 s lifetimes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import expect

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.core.status import PartState
from m365pbx.sync.leases import KeeperState
from m365sim.clock import VirtualClock
from m365sim.scenario import load_scenario
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.browser import chromium
from tests.e2e.harness import running, settings_for
from tests.e2e.test_admin_ui import PASSWORD, base, create_admin
from tests.e2e.test_part_status import status_cli
from tests.sim.conftest import PASSWORD as USER_PASSWORD
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

LIFETIME = 3.0
WALL = 60.0  # generous wall-time bound for each step (a step takes a few lease lifetimes)
OTHERS = {  # tenants besides Contoso: name -> (tenant id, app id)
    "fabrikam": ("5f1c0de0-0000-4000-8000-00000000fab1", "5f1c0de0-0000-4000-8000-0000000000a1"),
    "northwind": ("5f1c0de0-0000-4000-8000-00000000a0a2", "5f1c0de0-0000-4000-8000-0000000000a2"),
    "tailspin": ("5f1c0de0-0000-4000-8000-00000000a0a3", "5f1c0de0-0000-4000-8000-0000000000a3"),
}
SECRET = "balance-test-secret"
JOBS = sorted(f"tenant/{name}" for name in ["contoso", *OTHERS])


def add_tenants(sim: Simulator) -> None:
    """Three more tenants in the simulator, each with an app, a service account and a person."""
    load_scenario(sim, {"tenants": [{
        "id": tenant_id, "name": name.title(), "domains": [f"{name}.example"],
        "apps": [{"app_id": app_id, "name": "m365pbx", "secrets": [{"value": SECRET}],
                  "delegated": ["Presence.Read.All", "Presence.ReadWrite", "User.Read.All"],
                  "application": ["User.Read.All", "Presence.ReadWrite.All"]}],
        "users": [{"upn": f"svc-presence@{name}.example", "display_name": "Presence Service",
                   "password": USER_PASSWORD, "teams": True},
                  {"upn": f"lea@{name}.example", "display_name": f"Lea {name.title()}",
                   "password": USER_PASSWORD}],
    } for name, (tenant_id, app_id) in OTHERS.items()]})


def node_settings(server: RunningServer, tmp: Path, url: str, node: str) -> Settings:
    """One node of the installation: four tenants, its own port and node id."""
    own = tmp / node
    own.mkdir()
    settings_for(server, own, database={"url": url},
                 secrets={"key_file": str(tmp / "secret.key")}, admin={"enabled": True},
                 cluster={"enabled": True, "node_id": node, "lease_lifetime": "3s"})
    path = own / "m365pbx.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    for name, (tenant_id, app_id) in OTHERS.items():
        data["tenants"].append({
            "name": name, "tenant_id": tenant_id,
            "credentials": [{"name": f"graph-{name}", "client_id": app_id,
                             "client_secret": SECRET,
                             "permissions": ["presence.read", "presence.write", "users.read"]}],
            "service_accounts": [{"upn": f"svc-presence@{name}.example",
                                  "credential": f"graph-{name}", "sign_in": "password",
                                  "password": USER_PASSWORD}],
        })
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def holding(*services: Service) -> dict[str, int]:
    """How many tenants each node's keepers hold (nodes holding none are left out)."""
    found: Counter[str] = Counter()
    for service in services:
        for keeper in service.cluster.keepers.values():
            if keeper.state is KeeperState.HOLDING:
                found[service.node] += 1
    return dict(found)


async def table(service: Service) -> dict[str, tuple[str, int]]:
    """The live leases as the database holds them: job -> (holder, epoch)."""
    async with service.store.transaction() as tx:
        now = await tx.leases.database_now()
        return {lease.job: (lease.holder, lease.epoch) for lease in await tx.leases.all()
                if lease.expires_at > now}


async def until(what: str, check: Any, wall: float = WALL) -> None:
    """Wait (wall time, bounded) until `check()` holds; the leases run on real time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wall
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {wall} s: {what}")
        await asyncio.sleep(0.1)


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


async def test_nodes_joining_and_leaving_share_the_tenants_without_flapping(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    cluster_url: str,
) -> None:
    add_tenants(sim)
    settings = {node: node_settings(sim_server, tmp_path, cluster_url, node)
                for node in ("node-a", "node-b", "node-c")}
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running(settings["node-a"], clock))
        # Alone, node A takes every tenant at once, and keeps them.
        await until("node-a holds 4", lambda: holding(a) == {"node-a": 4})
        await asyncio.sleep(LIFETIME + 0.5)  # node-a has settled
        assert holding(a) == {"node-a": 4}

        b_stack = contextlib.AsyncExitStack()
        b = await b_stack.enter_async_context(running(settings["node-b"], clock))
        # Just joined, node B does not count yet: nothing moves.
        await until("node-b's first plan", lambda: b.cluster.balancer is not None
                    and b.cluster.balancer.plan is not None)
        assert b.cluster.balancer is not None and b.cluster.balancer.plan is not None
        assert (b.cluster.balancer.plan.members, b.cluster.balancer.plan.share) == (("node-a",), 0)
        await asyncio.sleep(LIFETIME / 2)
        assert holding(a, b) == {"node-a": 4}
        # Settled: A gives two up, one per renewal interval, and B takes them.
        await until("2/2", lambda: holding(a, b) == {"node-a": 2, "node-b": 2})
        assert a.cluster.keepers and sum(k.handovers for k in a.cluster.keepers.values()) == 2

        c = await stack.enter_async_context(running(settings["node-c"], clock))
        await until("2/1/1", lambda: holding(a, b, c) == {"node-a": 2, "node-b": 1,
                                                          "node-c": 1})
        held = await table(a)
        assert sorted(held) == JOBS
        assert Counter(holder for holder, _ in held.values()) == {"node-a": 2, "node-b": 1,
                                                                  "node-c": 1}
        # Its part shows the same at its next roll call.
        await until("node-c's plan sees its tenant",
                    lambda: c.cluster.balancer is not None and c.cluster.balancer.plan is not None
                    and len(c.cluster.balancer.plan.held) == 1)
        balance = c.status.get("cluster/balance")
        assert balance is not None and balance.state is PartState.OK
        assert (balance.counters["nodes"], balance.counters["members"],
                balance.counters["share"], balance.counters["held"]) == (3, 3, 1, 1)

        # `m365pbx status` from any host: the nodes, live, with the jobs each holds.
        config = settings["node-a"].source_file
        assert config is not None
        found = json.loads((await status_cli(config, "--format", "json")).stdout)
        nodes = {n["node"]: (n["live"], len(n["jobs"])) for n in found["nodes"]}
        assert nodes == {"node-a": (True, 2), "node-b": (True, 1), "node-c": (True, 1)}
        # With each load: no tenant has matched people here (no PBX users), each weighs 1.
        assert {n["node"]: n["load"] for n in found["nodes"]} == {
            "node-a": 2, "node-b": 1, "node-c": 1}
        text = (await status_cli(config)).stdout
        assert re.search(r"node-b: live \(seen .*\), holds tenant/\w+ \(load 1\)", text), text

        # B stops cleanly: it leaves, releases its tenant, and C takes it at once.
        b_jobs = [job for job, (holder, _) in held.items() if holder == "node-b"]
        await b_stack.aclose()
        await until("2/2 again", lambda: holding(a, c) == {"node-a": 2, "node-c": 2})
        held = await table(a)
        assert sorted(held) == JOBS  # every tenant held again
        assert all(held[job][0] == "node-c" for job in b_jobs)
        found = json.loads((await status_cli(config, "--format", "json")).stdout)
        gone = next(n for n in found["nodes"] if n["node"] == "node-b")
        assert (gone["live"], gone["jobs"], gone["stopped_at"] is not None) == (False, [], True)

        # A quiet period of several lease lifetimes: nothing changes hands.
        given_up = sum(k.handovers for s in (a, c) for k in s.cluster.keepers.values())
        await asyncio.sleep(4 * LIFETIME)
        assert await table(a) == held
        assert holding(a, c) == {"node-a": 2, "node-c": 2}
        assert sum(k.handovers for s in (a, c) for k in s.cluster.keepers.values()) == given_up

        # The admin UI's Cluster page shows the same.
        await create_admin(config)
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(base(a) + "/admin/login")
            await page.fill("input[name=name]", "alice")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.click("nav >> text=Cluster")
            await expect(page).to_have_url(re.compile(r"/admin/cluster$"))
            await expect(page.locator("tr.node.live")).to_have_count(2)
            await expect(page.locator("tr.node[data-node=node-a] .load")).to_have_text("2")
            await expect(page.locator("tr.node.gone[data-node=node-b]")).to_contain_text(
                "gone (stopped)")
            # What the database holds now (a renewal late on a loaded machine may have
            # moved a lease to a new epoch since the quiet period).
            for job, (holder, epoch) in (await table(a)).items():
                row = page.locator(f"tr.job[data-job='{job}']")
                await expect(row.locator(".holder")).to_have_text(holder)
                await expect(row.locator(".epoch")).to_have_text(str(epoch))
            await page.screenshot(path=tmp_path / "cluster.png", full_page=True)
