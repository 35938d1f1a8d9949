"""Teams → PBX end to end: the simulator as Microsoft 365, the built-in API as the PBX."""

from __future__ import annotations

import os
from pathlib import Path

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.sim.conftest import TENANT_ID

PEOPLE = (("anna", "Anna Schmidt"), ("ben", "Ben Weber"))


async def test_polling_mode_busy_in_teams_shows_busy_in_the_pbx(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path)
    assert settings.webhook_url is None  # no public URL at all: polling only
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock)
        assert shown(pbx, "ben") is PbxPresence.ONLINE
        assert service.tenants["contoso"].parts.pool is None
        assert decryption_workers() == []  # no webhooks: no process waiting to decrypt


def decryption_workers() -> list[int]:
    """This process's children that decrypt rich notifications (graph/decrypt_worker.py)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = (entry / "stat").read_text().rpartition(")")[2].split()[1]
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == str(os.getpid()) and b"m365pbx.graph.decrypt_worker" in command:
            found.append(int(entry.name))
    return found


def shown(pbx: ApiConnection, key: str) -> PbxPresence:
    """What the PBX side shows for a person (online when nothing was written)."""
    state = pbx.shown(key)
    return PbxPresence.ONLINE if state is None else state.presence


def allow_loopback_webhooks(sim: Simulator) -> None:
    """Let the simulator deliver to http://127.0.0.1 (real Graph needs a public HTTPS URL)."""
    sim.settings.extra["notification_allow_http_loopback"] = True
    sim.subscriptions.settings.allow_http_loopback = True


def requests_to(sim: Simulator, method: str, path: str) -> int:
    """How many such requests reached the simulator."""
    return sum(1 for r in sim.faults.requests() if r["method"] == method and r["path"] == path)


async def test_webhook_mode_rich_notification_reaches_the_pbx(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(),
                            tenant_id=tenant_ref)
    async with running(settings, clock) as service:
        # The decryption worker is up before the first notification, which would otherwise
        # wait for it to boot.
        await eventually(lambda: len(decryption_workers()) >= 1, clock)
        assert service.receiver.counters["accepted"] == 0
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        pool = service.tenants["contoso"].parts.pool
        assert pool is not None
        owner = pool.owners["svc-presence@contoso.com"]
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        polls_before = service.tenants["contoso"].parts.poller.rounds
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2)
        assert service.receiver.counters["accepted"] >= 1
        assert service.receiver.counters.get("forged", 0) == 0
        health = service.health()
        assert health["notifications"]["refused_last_5_min"] == 0, health["notifications"]
        assert health["tenants"]["contoso"]["tenant_id"] == {
            "configured": tenant_ref, "id": TENANT_ID, "error": None, "since": None}
        # It came by notification: no polling round ran meanwhile (reconciliation is 5 min).
        assert service.tenants["contoso"].parts.poller.rounds == polls_before
        # The presence subscription, and the one on users that wakes directory changes.
        assert requests_to(sim, "POST", "/v1.0/subscriptions") == 2


async def test_a_restart_resumes_the_subscription_with_patch_and_loses_nothing(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(),
                            tenant_id=tenant_ref)
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners["svc-presence@contoso.com"]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        first_id = owner.current.graph_id  # type: ignore[union-attr]
    # Down for a while: a change happens that nobody was listening for.
    await in_teams(sim_server, "ben@contoso.com",
                   {"preferred": {"availability": "Busy", "activity": "Busy"}})
    await clock.advance(120)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners["svc-presence@contoso.com"]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy, clock, step=0.5)
        assert owner.current is not None and owner.current.graph_id == first_id
        assert owner.renewals >= 1 and owner.creates == 0
        # One presence and one users subscription in all: the second run resumed both.
        assert requests_to(sim, "POST", "/v1.0/subscriptions") == 1 + 1
        assert requests_to(sim, "PATCH", f"/v1.0/subscriptions/{first_id}") >= 1
        # The change made while down shows after the first round of reading everyone.
        await eventually(lambda: shown(pbx, "ben") is PbxPresence.BUSY, clock)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Away", "activity": "Away"}})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.AWAY, clock, step=0.2)


async def test_lost_notifications_are_repaired_by_reconciliation(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(),
                            tenant_id=tenant_ref)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners["svc-presence@contoso.com"]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        sim.subscriptions.settings.loss = 1.0  # every notification from now on is lost
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "Busy", "activity": "Busy"}})
        await clock.advance(30)
        assert shown(pbx, "anna") is PbxPresence.ONLINE  # nothing arrived
        poller = service.tenants["contoso"].parts.poller
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock, step=10)
        assert poller.repairs >= 1
        metrics = service.registry.get_sample_value("m365pbx_reconcile_repairs_total",
                                                    {"tenant": "contoso"})
        assert metrics is not None and metrics >= 1
