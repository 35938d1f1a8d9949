"""Teams → PBX at scale: 2,000 people over 4 service accounts, changes by notification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import PbxUser
from m365sim.clock import VirtualClock
from m365sim.directory.changes import create_user
from m365sim.directory.generate import generate_users
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from m365sim.subscriptions.resources import Kind
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    running,
    settings_for,
    switchboard,
)
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks, shown
from tests.sim.conftest import PASSWORD

PEOPLE = 2000
ACCOUNTS = ["svc-presence@contoso.com"] + [f"svc-presence{n}@contoso.com" for n in (2, 3, 4)]
# What each person does in their Teams client, and what the PBX side then shows.
CHANGES: list[tuple[dict[str, Any], PbxPresence]] = [
    ({"preferred": {"availability": "Busy", "activity": "Busy"}}, PbxPresence.BUSY),
    ({"preferred": {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}},
     PbxPresence.DND),
    ({"preferred": {"availability": "Away", "activity": "Away"}}, PbxPresence.AWAY),
    ({"availability": "Busy", "activity": "InACall"}, PbxPresence.ON_THE_PHONE),
]


def add_service_users(sim: Simulator, tenant: Tenant) -> None:
    """The three extra licensed service users, with passwords (the first is in the scenario)."""
    for upn in ACCOUNTS[1:]:
        user = create_user(sim, tenant, {"userPrincipalName": upn,
                                         "displayName": f"Presence Service {upn[12]}"})
        user.password = PASSWORD


async def test_2000_people_over_4_service_accounts_by_notification(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    allow_loopback_webhooks(sim)
    add_service_users(sim, tenant)
    generated = generate_users(sim, tenant, users=PEOPLE, seed=12, teams_share=1.0,
                               disabled_share=0.0)
    by_id = {user.id: user for user in generated}
    # Display names repeat in a company this size; the mail nickname is unique.
    connection = {"name": "switchboard", "kind": "api", "tenant": "contoso",
                  "matching": {"rules": ["h323=mailNickname"]}}
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), accounts=ACCOUNTS,
                            pbx_connections=[connection])
    async with running(settings, clock) as service:
        pbx = switchboard(service)
        pbx.replace_users([PbxUser(u.mail_nickname or "", {"cn": u.display_name})
                           for u in generated])
        pool = service.tenants["contoso"].parts.pool
        assert pool is not None
        owners = [pool.owners[upn] for upn in ACCOUNTS]
        await eventually(
            lambda: len(service.hub.people()) == PEOPLE
            and all(o.healthy and o.people for o in owners),
            clock, step=0.5, wall_timeout=60,
        )
        sizes = [len(owner.people) for owner in owners]
        assert sum(sizes) == PEOPLE and max(sizes) <= 650 and max(sizes) - min(sizes) <= 1
        assert len({p for owner in owners for p in owner.people}) == PEOPLE
        assert pool.uncovered() == []
        now = clock.now()
        live = [s for s in sim.subscriptions.subscriptions.values()
                if s.kind is Kind.PRESENCE and s.live(now)]
        assert len(live) == 4
        holders = {tenant.users[s.user_id].user_principal_name for s in live if s.user_id}
        assert holders == set(ACCOUNTS)
        assert sorted(len(s.target.user_ids or ()) for s in live) == sorted(sizes)

        # One person on each account changes in Teams; each change arrives by notification.
        poller = service.tenants["contoso"].parts.poller
        rounds_before, accepted_before = poller.rounds, service.receiver.counters["accepted"]
        changed = []
        for owner, (body, expected) in zip(owners, CHANGES, strict=True):
            user = by_id[owner.people[len(owner.people) // 2]]
            await in_teams(sim_server, user.user_principal_name, body)
            changed.append((user.mail_nickname or "", expected))
        await eventually(lambda: all(shown(pbx, key) is want for key, want in changed),
                         clock, step=0.2)
        assert service.receiver.counters["accepted"] - accepted_before >= len(changed)
        assert poller.rounds == rounds_before  # no reconciliation round ran meanwhile
        others = [u.mail_nickname or "" for u in generated[:50]]
        assert all(shown(pbx, key) is PbxPresence.ONLINE
                   for key in others if key not in dict(changed))
