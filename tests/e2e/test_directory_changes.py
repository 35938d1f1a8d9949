"""Directory changes in Entra ID reach the people, the subscriptions and the PBX within a
minute, without a full sync (issue 18, item 10): the simulator's control API plays the
admin, the built-in presence API is the PBX."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.pbx.api.keys import MemoryApiKeyChecker, Scope
from m365sim.clock import VirtualClock
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import free_port, pbx_users, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks, requests_to

PBX = (("anna", "Anna Schmidt"), ("ben", "Ben Weber"), ("carl", "Carl Neumann"))
# Virtual seconds a change may take to show (the "about a minute").
WITHIN = 60.0


async def in_entra(server: RunningServer, method: str, path: str,
                   body: dict[str, Any] | None = None) -> None:
    """Act as the tenant's admin in Entra ID (the simulator's control API)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with httpx.AsyncClient(verify=context, timeout=60) as http:
        answer = await http.request(method, f"{server.url}/_sim/tenants/contoso.com{path}",
                                    json=body)
        assert answer.is_success, answer.text


def matched(service: Service) -> set[str]:
    """PBX keys of the hub's people."""
    return {person.key for person in service.hub.people()}


def in_view(service: Service) -> set[str]:
    """PBX keys the presence API shows."""
    return {person.key for person in service.view.people()}


async def api_people(service: Service, key: str) -> set[str]:
    """PBX keys `GET /api/v1/people` answers with, as a PBX app sees them."""
    listen = service.settings.listen
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://{listen.host}:{listen.port}/api/v1/people",
                                headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
    return {person["key"] for person in answer.json()["people"]}


async def within(seconds: float, check: Any, clock: VirtualClock) -> float:
    """Advance the virtual clock a second at a time until `check()`; the seconds it took."""
    waited = 0.0
    while not check():
        if waited >= seconds:
            raise AssertionError(f"not reached within {seconds} virtual seconds")
        await clock.advance(1.0)
        waited += 1.0
        # Let the rounds, the store and the hub run on the loop between steps.
        for _ in range(5):
            await asyncio.sleep(0.01)
    return waited


def user_id(sim: Simulator, upn: str) -> str:
    """The object id of a simulated user."""
    tenant = sim.directory.find_tenant("contoso.com")
    assert tenant is not None
    user = tenant.find_user(upn)
    assert user is not None
    return user.id


CHANGES: dict[str, tuple[str, str, dict[str, Any] | None, str, bool]] = {
    # kind: (method, path, body, PBX key, present afterwards)
    "added": ("POST", "/users", {"userPrincipalName": "carl@contoso.com",
                                 "displayName": "Carl Neumann", "teams": True}, "carl", True),
    "deleted": ("DELETE", "/users/ben@contoso.com", None, "ben", False),
    "disabled": ("PATCH", "/users/ben@contoso.com", {"accountEnabled": False}, "ben", False),
    "licence removed": ("PATCH", "/users/ben@contoso.com", {"teams": False}, "ben", False),
    "licence added": ("PATCH", "/users/ben@contoso.com", {"teams": True}, "ben", True),
}


@pytest.mark.parametrize("via", ["notification", "rounds"])
@pytest.mark.parametrize("kind", list(CHANGES))
async def test_a_directory_change_reaches_people_subscriptions_and_pbx_within_a_minute(
    kind: str, via: str, sim_server: RunningServer, sim: Simulator, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    method, path, body, key, present = CHANGES[kind]
    if kind == "licence added":  # ben starts without Teams
        await in_entra(sim_server, "PATCH", "/users/ben@contoso.com", {"teams": False})
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    keys = MemoryApiKeyChecker()
    api_key = keys.add("switchboard", [Scope.READ])
    async with running(settings, clock, api_keys=keys) as service:
        switchboard(service).replace_users(pbx_users(*PBX))
        before = {"anna", "ben"} - ({"ben"} if kind == "licence added" else set())
        await within(WITHIN, lambda: matched(service) == before, clock)
        owner = service.tenants["contoso"].parts.pool.owners[  # type: ignore[union-attr]
            "svc-presence@contoso.com"]
        await within(WITHIN, lambda: owner.healthy and len(owner.people) == len(before), clock)
        assert await api_people(service, api_key) == before
        directory = service.tenants["contoso"].parts.directory
        await within(WITHIN, lambda: directory.idle, clock)
        full_reads = requests_to(sim, "GET", "/v1.0/users")
        ids = {person.key: person.id for person in service.hub.people()}
        if via == "rounds":  # every notification lost: the delta rounds alone find it
            sim.subscriptions.settings.loss = 1.0

        await in_entra(sim_server, method, path, body)
        after = before | {key} if present else before - {key}
        took = await within(WITHIN, lambda: matched(service) == after
                            and in_view(service) == after, clock)
        if via == "notification":
            assert took <= 5  # the users notification started a round at once
        assert await api_people(service, api_key) == after
        # Those who stay are the same people (their state in the hub is kept).
        assert {p.key: p.id for p in service.hub.people() if p.key in before} == {
            k: v for k, v in ids.items() if k in after}
        # The presence subscription follows: the person is watched, or no longer.
        teams_id = user_id(sim, f"{key}@contoso.com") if present else None
        await within(WITHIN - took, lambda: owner.healthy and len(owner.people) == len(after),
                     clock)
        if teams_id is not None:
            assert teams_id in owner.people
        # No full read of the directory was needed (full_sync_interval is an hour).
        assert requests_to(sim, "GET", "/v1.0/users") == full_reads
        assert requests_to(sim, "GET", "/v1.0/users/delta") >= 1
        changes = service.tenants["contoso"].parts.changes
        assert changes is not None and changes.status.applied == 1
        assert changes.status.last_error is None
        users = service.tenants["contoso"].parts.users_subscription
        assert users is not None
        assert (users.notifications >= 1) if via == "notification" else users.notifications == 0


def with_directory(settings_path: Path, **directory: Any) -> Settings:
    """The test settings with these `directory` keys for the tenant."""
    data = yaml.safe_load(settings_path.read_text())
    data["tenants"][0]["directory"] = directory
    settings_path.write_text(yaml.safe_dump(data))
    return load_config(settings_path, environ={})


def users_subscriptions(sim: Simulator) -> list[str]:
    """Ids of the live subscriptions on `users` the simulator holds."""
    now = sim.clock.now()
    return [s.id for s in sim.subscriptions.subscriptions.values()
            if s.resource.strip("/").lower() == "users" and s.live(now)]


async def test_with_a_public_url_a_users_notification_starts_a_round_at_once(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    settings_for(sim_server, tmp_path, webhook_port=free_port())
    # Rounds once an hour: only the notification can bring the change within seconds.
    settings = with_directory(tmp_path / "m365pbx.yaml", changes_interval="1h")
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(*PBX))
        parts = service.tenants["contoso"].parts
        users = parts.users_subscription
        assert users is not None
        await within(WITHIN, lambda: matched(service) == {"anna", "ben"}
                     and users.current is not None, clock)
        assert users_subscriptions(sim) == [users.current.id]  # type: ignore[union-attr]
        # A start-up sync asked for while another ran has run too.
        await within(WITHIN, lambda: parts.directory.idle, clock)
        full_reads = requests_to(sim, "GET", "/v1.0/users")

        await in_entra(sim_server, "PATCH", "/users/ben@contoso.com", {"accountEnabled": False})
        took = await within(WITHIN, lambda: matched(service) == {"anna"}
                            and in_view(service) == {"anna"}, clock)
        assert took <= 5  # seconds, not the hour of the rounds
        assert users.notifications >= 1
        assert requests_to(sim, "GET", "/v1.0/users") == full_reads
        assert service.health()["tenants"]["contoso"]["users_notifications"]["error"] is None
        subscription = users.current
    # Stopped: the subscription stays, kept in the store for the next start to resume.
    assert subscription is not None and users_subscriptions(sim) == [subscription.id]


async def test_a_restart_resumes_the_kept_users_subscription_and_replaces_one_not_kept(
    sim_server: RunningServer, sim: Simulator, clock: VirtualClock, tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port())
    async with running(settings, clock) as service:
        users = service.tenants["contoso"].parts.users_subscription
        assert users is not None
        await within(WITHIN, lambda: users.current is not None, clock)
        first = users.current
    assert first is not None and users_subscriptions(sim) == [first.id]
    made = set(sim.subscriptions.subscriptions)
    async with running(settings, clock) as service:
        users = service.tenants["contoso"].parts.users_subscription
        assert users is not None
        await within(WITHIN, lambda: users.current is not None, clock)
        # Resumed with its client state: the same subscription, nothing made anew.
        assert users.current is not None and users.current.id == first.id
        assert users.resumed == 1 and set(sim.subscriptions.subscriptions) == made
        assert users.known(first.id) is not None
        # As after a crash before it was kept: the store no longer has it.
        async with service.store.transaction() as tx:
            tenant = await tx.tenants.find("contoso")
            assert tenant is not None
            await tx.mailbox_subscriptions.delete(tenant.id, "users", [""])
    async with running(settings, clock) as service:
        users = service.tenants["contoso"].parts.users_subscription
        assert users is not None
        await within(WITHIN, lambda: users.current is not None, clock)
        # Ours but not kept (its client state is lost): deleted, and a new one made.
        assert users.current is not None and users.current.id != first.id
        assert users.resumed == 0
        assert users_subscriptions(sim) == [users.current.id]
