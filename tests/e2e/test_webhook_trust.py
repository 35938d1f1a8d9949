"""Webhook notifications stay trusted through what Microsoft does over time (issue 18):
tenant_id written as a domain, signing keys rotated mid-run, a clock that differs from
Microsoft's, the same tenant declared twice, a forged notification."""

from __future__ import annotations

import logging
import ssl
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from m365pbx.app import Service
from m365pbx.core.presence import PbxPresence
from m365sim.clock import VirtualClock
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
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks, requests_to, shown
from tests.sim.conftest import APP_ID, APP_SECRET, PASSWORD, TENANT_ID

SVC = "svc-presence@contoso.com"
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}
BUSY = {"preferred": {"availability": "Busy", "activity": "Busy"}}


class ShiftedClock:
    """m365pbx's clock `offset` seconds ahead of the simulator's (same virtual time base)."""

    def __init__(self, base: VirtualClock, offset: float) -> None:
        self.base = base
        self.offset = timedelta(seconds=offset)

    def now(self) -> datetime:
        """The simulator's time plus the offset."""
        return self.base.now() + self.offset

    async def sleep(self, seconds: float) -> None:
        """Sleep on the shared virtual clock."""
        await self.base.sleep(seconds)


async def sim_control(server: RunningServer, path: str, body: dict[str, Any]) -> Any:
    """POST to one of the simulator's control routes."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.post(f"{server.url}/_sim{path}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()


def owner_of(service: Service, tenant: str = "contoso") -> Any:
    """The service account's subscription owner."""
    pool = service.tenants[tenant].parts.pool
    assert pool is not None
    return pool.owners[SVC]


async def test_notifications_keep_applying_after_microsoft_rotates_its_signing_keys(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), tenant_id=tenant_ref)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2)
        assert service.signing_keys.fetches == 1
        # Days later (past the few minutes between two reads), Microsoft rotates its keys.
        await clock.advance(301)
        rotated = await sim_control(sim_server, "/signing-keys/rotate",
                                    {"retire_previous": True})
        accepted = service.receiver.counters["accepted"]
        await in_teams(sim_server, "ben@contoso.com", BUSY)
        await eventually(lambda: shown(pbx, "ben") is PbxPresence.BUSY, clock, step=0.2)
        # By notification, verified with the new key, read once.
        assert service.receiver.counters["accepted"] > accepted
        assert service.receiver.counters.get("forged", 0) == 0
        assert service.signing_keys.fetches == 2
        assert rotated["published"] == [rotated["kid"]]
        await in_teams(sim_server, "anna@contoso.com", BUSY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock, step=0.2)
        assert service.signing_keys.fetches == 2
        assert service.health()["notifications"]["refused_last_5_min"] == 0


@pytest.mark.parametrize("ahead", [5.0, 600.0], ids=["5s", "10min"])
async def test_subscriptions_are_made_with_our_clock_ahead_of_microsofts(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    ahead: float,
) -> None:
    # The simulator checks expiries on its own clock, as Graph does; ours runs ahead of it
    # (its Date headers say so: the simulator's `date_skew_s` would only fake the header).
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    ours = ShiftedClock(clock, ahead)
    async with running(settings, ours) as service:  # type: ignore[arg-type]
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        assert owner.last_error is None
        assert owner.current is not None
        # Asked for at most Graph's 60 minutes by Graph's clock, and close to them.
        left = owner.current.expires - clock.now()
        assert timedelta(minutes=55) <= left <= timedelta(minutes=60)
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2)
        # Renewals stay within the limit too.
        renewals = owner.renewals
        await eventually(lambda: owner.renewals > renewals, clock, step=30.0)
        assert owner.last_error is None
        refused = [r for r in sim.faults.requests() if r["path"].startswith("/v1.0/subscriptions")
                   and r["status"] == 400]
        assert len(refused) <= 1  # at most the first one, before Graph's Date was known


async def test_the_same_tenant_declared_by_id_and_by_domain_runs_once(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)

    def declared(name: str, tenant_id: str) -> dict[str, Any]:
        return {"name": name, "tenant_id": tenant_id,
                "credentials": [{"name": f"{name}-graph", "client_id": APP_ID,
                                 "client_secret": APP_SECRET,
                                 "permissions": ["presence.read", "users.read"]}]}

    settings = settings_for(
        sim_server, tmp_path,
        tenants=[declared("contoso", TENANT_ID), declared("contoso-again", "contoso.com")],
        pbx_connections=[{"name": "switchboard", "kind": "api", "tenant": "contoso"},
                         {"name": "again", "kind": "api", "tenant": "contoso-again"}])
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        again = service.connections["again"]
        again.replace_users(pbx_users(*PEOPLE))  # type: ignore[attr-defined]
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        report = service.health()
        error = report["tenants"]["contoso-again"]["tenant_id"]["error"]
        assert error is not None and "declared twice" in error and "'contoso'" in error
        assert report["tenants"]["contoso-again"]["tenant_id"]["id"] == TENANT_ID
        assert report["tenants"]["contoso"]["tenant_id"]["error"] is None
        assert report["ok"] is False
        assert any(r.levelno == logging.ERROR and "declared twice" in r.getMessage()
                   for r in caplog.records)
        # Only one of them reads the directory and polls presence.
        await clock.advance(60)
        assert service.tenants["contoso-again"].parts.poller.rounds == 0
        assert {p.tenant for p in service.hub.people()} == {"contoso"}


async def test_a_forged_notification_is_refused_logged_and_shown_in_healthz(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    allow_loopback_webhooks(sim)
    port = free_port()
    settings = settings_for(sim_server, tmp_path, webhook_port=port, tenant_id="contoso.com")
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        forged_state = "guessed-" + PASSWORD
        body = {"value": [{"subscriptionId": owner.current.graph_id, "clientState": forged_state,
                           "changeType": "updated", "tenantId": TENANT_ID,
                           "resource": "communications/presences/x",
                           "resourceData": {"id": "x"}}]}
        async with httpx.AsyncClient(timeout=60) as http:
            for _ in range(5):
                answer = await http.post(f"http://127.0.0.1:{port}{settings.webhook_path}",
                                         json=body)
                assert answer.status_code == 403
        report = service.health()["notifications"]
        assert report["refused_last_5_min"] == 5
        assert report["reasons"]["forged"]["count"] == 5
        assert "client state does not match" in report["reasons"]["forged"]["last_reason"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                    and "notification refused" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited
        assert forged_state not in caplog.text
        await clock.advance(301)
        assert service.health()["notifications"]["refused_last_5_min"] == 0


async def test_a_reauthorization_challenge_is_answered_and_presence_keeps_flowing(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), tenant_id=tenant_ref)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        graph_id = owner.current.graph_id
        # Delivery pauses at once unless m365pbx answers the challenge (POST /reauthorize).
        answer = await sim_control(sim_server, f"/subscriptions/{graph_id}/lifecycle",
                                   {"event": "reauthorizationRequired", "pause_after_s": 0})
        assert answer["sent"] is True
        await eventually(lambda: requests_to(
            sim, "POST", f"/v1.0/subscriptions/{graph_id}/reauthorize") == 1, clock, step=0.2)
        assert service.receiver.counters["lifecycle_reauthorizationRequired"] == 1
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2)
        assert owner.current is not None and owner.current.graph_id == graph_id
        assert service.health()["notifications"]["refused_last_5_min"] == 0


async def test_basic_notifications_are_read_back_with_tenant_id_in_either_form(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
    tenant_ref: str,
) -> None:
    # Without rich content a notification only names the person, who is then read back:
    # the read-back was looked up by comparing the configured tenant_id with Graph's id.
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), tenant_id=tenant_ref,
                            teams_to_pbx={"min_poll_interval": "10s",
                                          "reconcile_interval": "30m",
                                          "rich_notifications": False})
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        reads = requests_to(sim, "POST", "/v1.0/communications/getPresencesByUserId")
        await in_teams(sim_server, "anna@contoso.com", DND)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2,
                         wall_timeout=10)
        assert requests_to(sim, "POST", "/v1.0/communications/getPresencesByUserId") > reads
        assert service.receiver.counters["accepted"] >= 1


async def test_reauthorization_uses_a_new_token_so_the_challenges_do_not_repeat(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    # Graph challenges a subscription shortly before the token that authorized it runs out.
    # Answering with the same cached token authorized nothing new, so the next challenge came
    # at once: hundreds of reauthorize calls an hour per service account.
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = owner_of(service)
        await eventually(lambda: owner.healthy and len(owner.people) == 2, clock)
        graph_id = owner.current.graph_id
        for _ in range(3 * 60):  # three hours, a minute at a time
            await clock.advance(60)
        presence = requests_to(sim, "POST", f"/v1.0/subscriptions/{graph_id}/reauthorize")
        every = sum(1 for r in sim.faults.requests() if r["path"].endswith("/reauthorize"))
        # Tokens last about an hour: one answered challenge per token and subscription (the
        # presence one and the tenant's users one), a few in three hours. Was 157.
        assert presence <= 6
        assert every <= 12
        await in_teams(sim_server, "anna@contoso.com", DND)
        # Three virtual hours went by in a few real seconds: on a loaded machine the
        # service may still be catching up on them, so the wall-time wait is generous.
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock, step=0.2,
                         wall_timeout=90)
