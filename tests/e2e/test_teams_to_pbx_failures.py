"""Teams → PBX when Microsoft 365 fails us: another installation holds the subscription,
429 storms, an expired client secret. Each failure is visible in words, presence keeps
flowing where it can, and the documented way out recovers."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.types import Receive, Scope, Send
from typer.testing import CliRunner

from m365pbx.app import Service
from m365pbx.cli.app import _register, app
from m365pbx.config import Settings, load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
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
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks, shown
from tests.sim.conftest import APP_ID, APP_SECRET, bearer, user_token

SVC = "svc-presence@contoso.com"
ELSEWHERE = "other-installation.example"
BUSY = {"preferred": {"availability": "Busy", "activity": "Busy"}}
DND = {"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}}
AWAY = {"preferred": {"availability": "Away", "activity": "Away"}}


# --- another installation ----------------------------------------------------------------------
class OtherInstallation:
    """A webhook of another m365pbx elsewhere: answers validation, counts notifications."""

    def __init__(self) -> None:
        self.notifications = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        token = httpx.QueryParams(scope.get("query_string", b"").decode()).get("validationToken")
        if token is not None:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": token.encode()})
            return
        self.notifications += len(json.loads(body).get("value", []))
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class Elsewhere(httpx.AsyncBaseTransport):
    """The simulator's way out: the other installation's host in-process, the rest real."""

    def __init__(self, other: OtherInstallation) -> None:
        self.other = httpx.ASGITransport(app=other)
        self.real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Route one request."""
        if request.url.host == ELSEWHERE:
            return await self.other.handle_async_request(request)
        return await self.real.handle_async_request(request)


async def other_installation_subscribes(server: RunningServer, sim: Simulator,
                                        tenant: Tenant) -> tuple[str, OtherInstallation]:
    """Another installation, same app and service account, subscribes to Anna and Ben."""
    other = OtherInstallation()
    sim.subscriptions.transport = Elsewhere(other)
    ids = ",".join(f"'{tenant.users_by_upn[f'{name}@contoso.com']}'" for name in ("anna", "ben"))
    body = {
        "changeType": "updated", "clientState": "theirs",
        "notificationUrl": f"https://{ELSEWHERE}/graph/notifications",
        "resource": f"/communications/presences?$filter=id in ({ids})",
        "expirationDateTime": (sim.clock.now() + timedelta(minutes=55)).isoformat(),
    }
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.post(f"{server.url}/v1.0/subscriptions", json=body,
                                 headers=bearer(user_token(sim, SVC)))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"]), other


async def test_another_installation_holds_the_subscription_then_the_admin_takes_it_over(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    theirs, other = await other_installation_subscribes(sim_server, sim, tenant)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[SVC]  # type: ignore[union-attr]
        await eventually(lambda: owner.state is ConnectionState.ERROR, clock)
        error = owner.last_error or ""
        assert f"another installation holds the presence subscription of {SVC}" in error
        assert f"https://{ELSEWHERE}/graph/notifications" in error
        assert f"m365pbx subscriptions takeover --account {SVC}" in error
        assert service.health()["tenants"]["contoso"]["subscriptions"][SVC] == {
            "state": "error", "error": error, "since": owner.since.isoformat()}

        # Meanwhile presence reaches the PBX by polling at the polling pace (10 s), not at
        # the next reconciliation round (5 min); the bound leaves room for a slow machine.
        poller = service.tenants["contoso"].parts.poller
        await in_teams(sim_server, "anna@contoso.com", BUSY)
        started = clock.now()
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
        assert clock.now() - started < timedelta(minutes=2)
        assert poller.uncovered_rounds >= 1
        assert other.notifications >= 1  # the other installation still gets its presence

        # The admin decides: the command beside the running service takes it over.
        _register()
        result = await asyncio.to_thread(
            CliRunner().invoke, app,
            ["subscriptions", "takeover", "--account", SVC, "--config",
             str(tmp_path / "m365pbx.yaml")])
        assert result.exit_code == 0, result.output
        assert f"deleted another installation's presence subscription {theirs}" in result.output
        async with service.store.transaction() as tx:  # in the audit trail (issue 21 §4)
            [takeover] = await tx.audit.list_recent(object_type="service_account", object_id=SVC)
        assert takeover.action == "subscription.takeover" and takeover.actor == "cli"
        assert takeover.details["deleted"] == [theirs]
        await eventually(lambda: owner.healthy, clock)
        assert owner.last_error is None
        assert service.health()["tenants"]["contoso"]["subscriptions"][SVC] == {
            "state": "connected", "error": None, "since": owner.since.isoformat()}
        heard_by_other = other.notifications
        await in_teams(sim_server, "ben@contoso.com", DND)
        await eventually(lambda: shown(pbx, "ben") is PbxPresence.DND, clock, step=0.2)
        assert other.notifications == heard_by_other


async def test_take_over_from_the_running_service(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    await other_installation_subscribes(sim_server, sim, tenant)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[SVC]  # type: ignore[union-attr]
        await eventually(lambda: owner.state is ConnectionState.ERROR, clock)
        assert await owner.take_over() == 1
        await eventually(lambda: owner.healthy, clock, step=0.2)
        await in_teams(sim_server, "anna@contoso.com", AWAY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.AWAY, clock, step=0.2)
        assert service.receiver.counters["accepted"] >= 1


# --- a subscription of ours the store does not know ---------------------------------------------
async def forget_recorded_subscriptions(tmp: Path) -> None:
    """Empty the store's subscription records, as a run stopped between Graph's answer to
    a create and its record of it leaves them (a node that lost its lease, a kill -9)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp / 'state.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DELETE FROM subscriptions"))
    finally:
        await engine.dispose()


async def test_a_subscription_of_ours_nobody_recorded_is_replaced_without_a_conflict(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[SVC]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy, clock, step=0.2)
    await forget_recorded_subscriptions(tmp_path)
    sim.faults.log.clear()
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[SVC]  # type: ignore[union-attr]
        await eventually(lambda: owner.healthy, clock, step=0.2)
        await in_teams(sim_server, "anna@contoso.com", AWAY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.AWAY, clock, step=0.2)
        creates = [r["status"] for r in sim.faults.requests()
                   if r["method"] == "POST" and r["path"] == "/v1.0/subscriptions"]
        # The unrecorded one was deleted before a new one was made: Graph never had to
        # refuse a second subscription of this app and account (409).
        assert 409 not in creates and 201 in creates, creates
        live = [s for s in sim.subscriptions._live() if "presences" in s.resource]
        assert len(live) == 1


# --- 429 storms -------------------------------------------------------------------------------
def sim_outcomes(sim: Simulator, path: str) -> dict[str, int]:
    """How the simulator answered requests to this path, by outcome."""
    found: dict[str, int] = {}
    for request in sim.faults.requests():
        if request["path"] == path:
            found[request["outcome"]] = found.get(request["outcome"], 0) + 1
    return found


async def test_429_storms_delay_presence_but_everyone_converges(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    for prefix in ("/v1.0/communications/getPresencesByUserId", "/v1.0/subscriptions"):
        sim.faults.add_fault(FaultRule(status=429, path_prefix=prefix, rate=0.8,
                                       retry_after_s=7))
    await in_teams(sim_server, "ben@contoso.com", DND)  # before m365pbx starts
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        owner = service.tenants["contoso"].parts.pool.owners[SVC]  # type: ignore[union-attr]
        await in_teams(sim_server, "anna@contoso.com", BUSY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY
                         and shown(pbx, "ben") is PbxPresence.DND, clock, wall_timeout=30)
        await eventually(lambda: owner.healthy, clock, wall_timeout=30)
        await in_teams(sim_server, "anna@contoso.com", AWAY)
        await in_teams(sim_server, "ben@contoso.com", {"preferred": None})
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.AWAY
                         and shown(pbx, "ben") is PbxPresence.ONLINE, clock, wall_timeout=30)
        assert service.receiver.counters.get("processing_failed", 0) == 0
        throttled = service.registry.get_sample_value("m365pbx_graph_throttled_total",
                                                      {"tenant": "contoso"})
        assert throttled is not None and throttled >= 2
        assert sim_outcomes(sim, "/v1.0/communications/getPresencesByUserId").get("fault", 0) >= 1
        assert sim_outcomes(sim, "/v1.0/subscriptions").get("fault", 0) >= 1
        assert service.health()["tenants"]["contoso"]["subscriptions"][SVC]["state"] == (
            "connected")


# --- an expired client secret -----------------------------------------------------------------
NEW_SECRET = "Qw3~the-replacement-secret~value"


def with_secret(path: Path, secret: str) -> Settings:
    """The settings file with the credential's secret replaced, as the admin edits it."""
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["client_secret"] = secret
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def contoso_health(service: Service) -> dict[str, Any]:
    """The Contoso tenant's part of /healthz."""
    health = service.health()
    assert isinstance(health["tenants"]["contoso"], dict)
    return health["tenants"]["contoso"]


async def test_an_expired_client_secret_is_explained_and_a_new_one_recovers(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = tenant.apps[APP_ID].secrets[0]
    secret.expires_at = clock.now() + timedelta(minutes=30)
    settings = settings_for(sim_server, tmp_path)  # polling mode: the app's secret is all
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await in_teams(sim_server, "anna@contoso.com", BUSY)
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.BUSY, clock)
        # The secret expires; so does the last token it got (Graph answers 401, m365pbx
        # signs in again and is refused).
        await clock.advance(3700)
        pbx.replace_users(pbx_users(*PEOPLE))  # a directory sync now
        await in_teams(sim_server, "anna@contoso.com", DND)

        def both_explained() -> bool:
            # A round in flight across the clock's jump reads as "stalled" until Graph's
            # 401 and the refused sign-in come back; wait for the explanation, not any error.
            health = contoso_health(service)
            return all("AADSTS7000222" in (health[part]["error"] or "")
                       for part in ("directory", "polling"))

        await eventually(both_explained, clock)
        health = service.health()
        assert health["ok"] is False
        for part in ("directory", "polling"):
            error = health["tenants"]["contoso"][part]["error"]
            assert "the client secret has expired (AADSTS7000222)" in error
            assert "Create a new client secret for the app registration" in error
        assert shown(pbx, "anna") is PbxPresence.BUSY  # the last known state stays
        assert APP_SECRET not in json.dumps(health) and APP_SECRET not in caplog.text

    # The admin creates a new secret in Entra and puts it in the configuration.
    context = ssl.create_default_context(cafile=str(sim_server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        added = await http.post(f"{sim_server.url}/_sim/tenants/contoso.com/apps/{APP_ID}/secrets",
                                json={"value": NEW_SECRET})
        assert added.status_code == 201, added.text
    await clock.advance(61)  # Entra refuses a brand-new secret for a minute
    settings = with_secret(tmp_path / "m365pbx.yaml", NEW_SECRET)
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: shown(pbx, "anna") is PbxPresence.DND, clock)
        health = service.health()
        assert health["ok"] is True
        assert contoso_health(service)["polling"]["error"] is None
        assert contoso_health(service)["directory"]["people"] == 2
    assert NEW_SECRET not in caplog.text and APP_SECRET not in caplog.text
