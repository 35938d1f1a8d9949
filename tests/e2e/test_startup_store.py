"""Start-up at scale on SQLite and PostgreSQL: no write is lost to a locked database.

10,000 people over 16 service accounts start at once: the directory sync stores the people,
16 owners create and record their subscriptions, the presence state and the uploaded
directory are saved, all in the same seconds. Every subscription row must be in the store
and a restart must resume each subscription (a PATCH, no new one), with no lock error.
Before the store's one-writer rule, the SQLite variant lost records to `database is locked`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from m365pbx.app import Service
from m365pbx.pbx.base import PbxUser
from m365pbx.store import db
from m365pbx.store.tables import Subscription
from m365sim.clock import VirtualClock
from m365sim.directory.changes import create_user
from m365sim.directory.generate import generate_users
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from m365sim.subscriptions.resources import Kind
from tests.e2e.harness import eventually, free_port, running, settings_for, switchboard
from tests.e2e.test_teams_to_pbx import allow_loopback_webhooks
from tests.sim.conftest import PASSWORD
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401

PEOPLE = 10_000
ACCOUNTS = ["svc-presence@contoso.com"] + [f"svc-presence{n}@contoso.com" for n in range(2, 17)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    make: Callable[[], str] = request.getfixturevalue("new_pg_database")
    return make()


async def stored_subscriptions(service: Service) -> set[str]:
    """The Graph ids of the subscription rows in the store."""
    async with service.store.transaction() as tx:
        return set(await tx.session.scalars(select(Subscription.graph_subscription_id)))


def held(service: Service) -> dict[str, str]:
    """Each service account's current subscription id, as its owner holds it."""
    pool = service.tenants["contoso"].parts.pool
    assert pool is not None
    return {upn: owner.current.graph_id for upn, owner in pool.owners.items()
            if owner.current is not None and owner.healthy and owner.people}


def lock_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Logged lines (with their tracebacks) that say the database was locked."""
    return [r.getMessage() for r in caplog.records
            if "locked" in r.getMessage() or "locked" in (r.exc_text or "")
            or (r.exc_info and "locked" in str(r.exc_info[1]))]


async def test_10000_people_16_accounts_start_and_resume_without_losing_a_record(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    # As on a loaded 2-core machine, where a writer's coroutine waits longer for the event
    # loop than SQLite waits for its lock: only the store's one-writer rule keeps every row.
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    allow_loopback_webhooks(sim)
    for upn in ACCOUNTS[1:]:
        create_user(sim, tenant, {"userPrincipalName": upn}).password = PASSWORD
    generated = generate_users(sim, tenant, users=PEOPLE, seed=18, teams_share=1.0,
                               disabled_share=0.0)
    connection = {"name": "switchboard", "kind": "api", "tenant": "contoso",
                  "matching": {"rules": ["h323=mailNickname"]}}
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(), accounts=ACCOUNTS,
                            pbx_connections=[connection], database={"url": database_url})

    async with running(settings, clock) as service:
        switchboard(service).replace_users(
            [PbxUser(u.mail_nickname or "", {"cn": u.display_name}) for u in generated])
        await eventually(lambda: len(service.hub.people()) == PEOPLE
                         and len(held(service)) == len(ACCOUNTS),
                         clock, step=0.5, wall_timeout=90)
        first = held(service)
        assert await stored_subscriptions(service) == set(first.values())
        assert service.health()["store"]["failed_writes"] == 0

    creates = sum(1 for s in sim.subscriptions.subscriptions.values()
                  if s.kind is Kind.PRESENCE)
    assert creates == len(ACCOUNTS)

    async with running(settings, clock) as service:
        await eventually(lambda: len(service.hub.people()) == PEOPLE
                         and len(held(service)) == len(ACCOUNTS),
                         clock, step=0.5, wall_timeout=90)
        assert held(service) == first  # each one resumed, none created anew
        assert await stored_subscriptions(service) == set(first.values())
    assert sum(1 for s in sim.subscriptions.subscriptions.values()
               if s.kind is Kind.PRESENCE) == creates
    assert lock_errors(caplog) == []
