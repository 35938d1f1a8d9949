"""One model of visible state: each part's status in /healthz, /readyz, /metrics, the store
and `m365pbx status`, while the service runs and after it stopped (issue 21, section 1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner, Result

from m365pbx.app import Service
from m365pbx.cli.app import _register, app
from m365pbx.config import load_config
from m365pbx.core.status import PartState, PartStatus
from m365pbx.service.status_store import read_statuses
from m365pbx.store import Repositories
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import (
    eventually,
    free_port,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_calendar_to_pbx import calendar_settings, calendar_with_webhooks
from tests.e2e.test_teams_to_pbx import PEOPLE
from tests.sim.conftest import APP_ID

SIGN_IN = "tenant/contoso/sign_in"


async def status_cli(config: Path, *args: str) -> Result:
    """`m365pbx status` as an admin runs it (in a thread: the CLI runs its own loop)."""
    _register()
    # The virtual clock is not the wall clock: no record counts as stale here.
    return await asyncio.to_thread(CliRunner().invoke, app, [
        "status", "--config", str(config), "--stale-after", "1e12", *args])


async def get(service: Service, path: str) -> httpx.Response:
    """One of the service's own routes over HTTP."""
    listen = service.settings.listen
    async with httpx.AsyncClient(base_url=f"http://{listen.host}:{listen.port}") as http:
        return await http.get(path)


async def test_a_wrong_secret_is_one_red_part_everywhere_and_stays_readable_after_stop(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, tenants=[{
        "name": "contoso", "tenant_id": "contoso.com",
        "credentials": [{"name": "graph", "client_id": APP_ID,
                         "client_secret": "Wr0ng~secret~value~pasted~here",
                         "permissions": ["presence.read", "presence.write", "users.read"]}],
    }])
    config = tmp_path / "m365pbx.yaml"
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))

        def sign_in_refused() -> bool:
            part = service.status.get(SIGN_IN)
            return part is not None and part.state is PartState.BAD_CREDENTIALS

        await eventually(sign_in_refused, clock)
        part = service.status.get(SIGN_IN)
        assert part is not None and part.since is not None
        assert (part.error or "").count("AADSTS7000215") == 1  # named once, not twice
        assert "Paste the secret's Value" in (part.fix or "")

        health = (await get(service, "/healthz")).json()
        shown = {p["part"]: p for p in health["parts"]}
        assert shown[SIGN_IN]["state"] == "bad_credentials"
        assert shown[SIGN_IN]["fix"] == part.fix
        assert shown["pbx/switchboard"]["state"] == "ok"
        ready = await get(service, "/readyz")
        assert ready.status_code == 200 and SIGN_IN in ready.json()["attention"]
        metrics = (await get(service, "/metrics")).text
        assert ('m365pbx_part_state{kind="sign_in",part="tenant/contoso/sign_in",'
                'state="bad_credentials"} 1.0') in metrics
        assert ('m365pbx_part_state{kind="sign_in",part="tenant/contoso/sign_in",'
                'state="ok"} 0.0') in metrics

        async def recorded() -> list[str]:
            return [s.part for s in await read_statuses(service.store)
                    if s.state is PartState.BAD_CREDENTIALS]

        for _ in range(200):  # the recorder writes within its 2 s (virtual) of a change
            if SIGN_IN in await recorded():
                break
            await clock.advance(1)
            await asyncio.sleep(0.02)
        assert SIGN_IN in await recorded()
        running_result = await status_cli(config)
        assert running_result.exit_code == 1, running_result.output
        assert f"!! {SIGN_IN}: bad_credentials since" in running_result.output
        assert "AADSTS7000215" in running_result.output
        assert "fix: Paste the secret's Value" in running_result.output
        assert "ok service: ok" in running_result.output

    stopped = await status_cli(config, "--format", "json")
    assert stopped.exit_code == 1, stopped.output
    report = json.loads(stopped.output)
    parts = {p["part"]: p for p in report["parts"]}
    assert report["ok"] is False
    assert parts["service"]["state"] == "stopped"
    assert parts[SIGN_IN]["state"] == "bad_credentials"
    assert parts[SIGN_IN]["written_at"] is not None
    assert not any(p["stale"] for p in report["parts"])


async def test_a_working_service_says_everything_is_ok(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path)
    config = tmp_path / "m365pbx.yaml"
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))

        def all_ok() -> bool:
            statuses = service.status.snapshot()
            return (not service.status.not_ok() and any(
                s.part == SIGN_IN and s.state is PartState.OK for s in statuses))

        await eventually(all_ok, clock)
        kinds = {s.kind for s in service.status.snapshot()}
        assert {"sign_in", "tenant_id", "directory", "polling", "pbx_connection",
                "teams_writes", "store", "service"} <= kinds
        for _ in range(10):  # written by the next round of the recorder
            await clock.advance(3)
            await asyncio.sleep(0.05)
        result = await status_cli(config)
        assert result.exit_code == 0, result.output
        assert "everything is ok" in result.output
    result = await status_cli(config)
    assert result.exit_code == 1
    assert "!! service: stopped" in result.output and "fix: Start it again" in result.output


async def test_calendars_wanted_without_the_permission_are_a_degraded_part(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = calendar_settings(sim_server, tmp_path, grant=False)
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))

        def calendar_off() -> bool:
            part = service.status.get("tenant/contoso/calendar")
            return part is not None and part.state is PartState.DEGRADED

        await eventually(calendar_off, clock)
        part = service.status.get("tenant/contoso/calendar")
        assert part is not None
        assert "calendars.read" in (part.error or "") and "calendars.read" in (part.fix or "")


async def test_a_failing_store_makes_healthz_not_ok(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    # The store's part was shown in /healthz before but did not count for "ok".
    settings = settings_for(sim_server, tmp_path)
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        await eventually(lambda: service.health()["ok"] is True, clock)
        service.store.writes.failed_for_good("the test's row", "disk I/O error")
        health = service.health()
        store = next(p for p in health["parts"] if p["part"] == "store")
        assert store["state"] == "error" and "disk I/O error" in store["error"]
        assert "disk space" in store["fix"]
        assert health["ok"] is False
        service.store.writes.succeeded()
        assert service.health()["ok"] is True


async def test_a_restarted_node_forgets_the_parts_an_earlier_run_left(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path)
    async with running(settings, clock, node="n1") as service:
        await service.recorder.record()
        # As if the earlier run had a connection that the configuration no longer has.
        left = PartStatus("pbx/removed", "pbx_connection", PartState.ERROR, clock.now())

        async def leave(tx: Repositories) -> None:
            await tx.part_status.save("n1", [left], now=clock.now())

        await service.store.write(leave, what="a leftover")
    async with running(settings, clock, node="n1") as service:
        await service.recorder.record()
        parts = {s.part for s in await read_statuses(service.store) if s.node == "n1"}
        assert "pbx/removed" not in parts and "pbx/switchboard" in parts


async def test_a_service_account_with_a_wrong_password_is_its_own_red_part(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings_for(sim_server, tmp_path, webhook_port=free_port())
    path = tmp_path / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["service_accounts"][0]["password"] = "not-the-password"
    path.write_text(yaml.safe_dump(data))
    settings = load_config(path, environ={})
    account = "tenant/contoso/service_account/svc-presence@contoso.com"
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))

        def refused() -> bool:
            part = service.status.get(account)
            return part is not None and part.state is PartState.BAD_CREDENTIALS

        await eventually(refused, clock)
        part = service.status.get(account)
        assert part is not None and part.error and "AADSTS50126" in part.error
        assert "Check the password of svc-presence@contoso.com" in (part.fix or "")
        subscription = service.status.get("tenant/contoso/subscription/svc-presence@contoso.com")
        assert subscription is not None and not subscription.state.is_ok
        # The app's own sign-in works: only the account is red.
        sign_in = service.status.get(SIGN_IN)
        assert sign_in is not None and sign_in.state is not PartState.BAD_CREDENTIALS
        assert "not-the-password" not in str(service.health())


async def test_calendar_subscriptions_are_a_part_with_their_counts(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = calendar_with_webhooks(sim_server, sim, tmp_path)
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PEOPLE))
        part = "tenant/contoso/calendar_subscriptions"

        def both_active() -> bool:
            found = service.status.get(part)
            return found is not None and found.counters.get("active") == 2

        await eventually(both_active, clock, step=0.2)
        found = service.status.get(part)
        assert found is not None and found.state is PartState.OK and found.error is None
