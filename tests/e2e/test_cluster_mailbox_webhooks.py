"""Users, event and contact notifications on any node (issue 25): Graph posts to a node that
does not run the tenant; that node finds the subscription by id in the store, checks the
client state and hands the notification to the holder, whose directory changes and
calendar coordinator act on it at once. A node taking the tenant over resumes the users
subscription instead of making a new one.

Two services in this process share PostgreSQL and the simulator (webhook mode, calendars
read every 12 hours, contacts daily, directory change rounds every hour): what shows
sooner came by a notification handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from m365pbx.app import Service
from m365pbx.config import Settings, load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.sync.leases import KeeperState
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.harness import eventually, free_port, pbx_users, running, switchboard
from tests.e2e.test_calendar_to_pbx import add_event
from tests.e2e.test_calendar_to_pbx import shown as shown_with_note
from tests.e2e.test_cluster_webhooks import cut_off, handoff, node_settings, state
from tests.e2e.test_directory_changes import in_entra
from tests.e2e.test_teams_to_pbx import PEOPLE, allow_loopback_webhooks
from tests.sim.conftest import TENANT_ID
from tests.store.conftest import new_pg_database, postgres_available  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres

WALL = 60.0  # generous wall-time bound: leases renew on real time
CARL = ("carl", "Carl Neumann")


@pytest.fixture
def cluster_url(new_pg_database: Any) -> str:  # noqa: F811 - the imported fixture
    """An empty PostgreSQL database the nodes share (each migrates it at start)."""
    return str(new_pg_database())


def with_mailboxes(settings: Settings, tmp: Path, node: str) -> Settings:
    """A node's settings with calendars (read every 12 h), contacts (daily) and hourly
    directory rounds."""
    path = tmp / node / "m365pbx.yaml"
    data = yaml.safe_load(path.read_text())
    data["tenants"][0]["credentials"][0]["permissions"] += ["calendars.read", "contacts.read"]
    data["tenants"][0]["directory"] = {"changes_interval": "1h"}
    data["pbx_connections"][0]["calendar"] = {"enabled": True, "poll_interval": "12h"}
    data["pbx_connections"][0]["contacts"] = {"enabled": True, "phone_region": "DE",
                                              "poll_interval": "1d"}
    data["teams_to_pbx"]["reconcile_interval"] = "1h"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


def matched(service: Service) -> set[str]:
    """PBX keys of the node's people."""
    return {person.key for person in service.hub.people()}


async def kept(service: Service, subscription: str) -> bool:
    """Whether the store has this event, contact or users subscription (any node sees it)."""
    async with service.store.transaction() as tx:
        return await tx.mailbox_subscriptions.find(subscription) is not None


def subscription_posts(sim: Simulator) -> int:
    """Subscriptions asked of Graph so far (POST /subscriptions, every kind)."""
    return sum(1 for r in sim.faults.requests()
               if r["method"] == "POST" and r["path"].rstrip("/").endswith("/subscriptions"))


@contextlib.asynccontextmanager
async def two_nodes(server: RunningServer, sim: Simulator, clock: VirtualClock, tmp: Path,
                    url: str) -> AsyncIterator[tuple[Service, Service, int, Settings]]:
    """node-a holding the tenant with its users and event subscriptions kept, node-b on
    standby receiving Graph's notifications."""
    allow_loopback_webhooks(sim)
    b_port = free_port()
    a_settings = with_mailboxes(node_settings(server, tmp, url, "node-a", port=free_port(),
                                              public_port=b_port), tmp, "node-a")
    b_settings = with_mailboxes(node_settings(server, tmp, url, "node-b", port=b_port,
                                              public_port=b_port), tmp, "node-b")
    async with contextlib.AsyncExitStack() as nodes:
        a = await nodes.enter_async_context(running(a_settings, clock))
        switchboard(a).replace_users(pbx_users(*PEOPLE, CARL))
        await eventually(lambda: state(a) is KeeperState.HOLDING, clock, wall_timeout=WALL)
        b = await nodes.enter_async_context(running(b_settings, clock))
        switchboard(b).replace_users(pbx_users(*PEOPLE, CARL))
        await eventually(lambda: state(b) is KeeperState.STANDBY, clock, wall_timeout=WALL)
        parts = a.tenants["contoso"].parts
        users, events = parts.users_subscription, parts.calendar_subscriptions
        contacts = parts.contact_subscriptions
        assert users is not None and events is not None and contacts is not None
        await eventually(lambda: matched(a) == {"anna", "ben"} and users.current is not None
                         and events.health()["active"] == 2
                         and contacts.health()["active"] == 2, clock, step=0.2,
                         wall_timeout=WALL)
        # Kept a moment after Graph made them: notifications before that are unknown to
        # other nodes (the rounds and reads repair what they carried).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WALL
        ids = [users.current.id, *events._by_id, *contacts._by_id]
        while not all([await kept(b, sid) for sid in ids]):
            assert loop.time() < deadline, "node-a never kept its subscriptions"
            await clock.advance(0.2)
        yield a, b, b_port, b_settings


async def test_users_event_and_contact_notifications_posted_to_a_standby_node_reach_the_holder(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path, cluster_url: str,
) -> None:
    async with two_nodes(sim_server, sim, clock, tmp_path, cluster_url) as (
            a, b, b_port, b_settings):
        parts = a.tenants["contoso"].parts
        users, events = parts.users_subscription, parts.calendar_subscriptions
        assert users is not None and users.current is not None and events is not None
        first = users.current.id

        # A new user in Entra: Graph tells node-b, which hands it to node-a, whose directory
        # change round runs at once (not at the hourly round).
        start = clock.now().timestamp()
        await in_entra(sim_server, "POST", "/users", {"userPrincipalName": "carl@contoso.com",
                                                      "displayName": CARL[1], "teams": True})
        await eventually(lambda: "carl" in matched(a), clock, step=0.2, wall_timeout=WALL)
        assert clock.now().timestamp() - start <= 60  # seconds, not the hour of the rounds
        assert users.notifications >= 1
        assert handoff(b)["handed_off_users"] >= 1 and handoff(b)["looked_up"] >= 1
        assert b.receiver.counters["accepted"] == 0  # nothing for node-b itself
        assert a.receiver.counters["taken_over"] >= 1
        assert matched(b) == set()  # node-b still runs nothing of the tenant

        # A meeting in Anna's calendar: the event notification reaches node-a's calendar
        # coordinator through node-b, and the PBX shows it with its subject on time (the
        # calendar is read only every 12 hours otherwise; the subject is only ours).
        notified = events.notifications
        meeting = clock.now().timestamp() + 120
        add_event(sim, tenant, "anna@contoso.com", subject="Handed over", start_in="2m",
                  duration="30m", show_as="busy")
        await eventually(lambda: events.notifications > notified, clock, step=0.2,
                         wall_timeout=WALL)
        assert handoff(b)["handed_off_calendar"] >= 1
        pbx = switchboard(a)
        await eventually(lambda: shown_with_note(pbx, "anna") == (PbxPresence.MEETING,
                                                                   "Handed over"),
                         clock, step=1.0, wall_timeout=WALL)
        assert clock.now().timestamp() - meeting <= 5

        # A contact added in Anna's Outlook: read at once by node-a (daily otherwise).
        sync, contacts = parts.contacts, parts.contact_subscriptions
        assert sync is not None and contacts is not None
        notified_reads = sync.status.notified_reads
        anna = tenant.find_user("anna@contoso.com")
        assert anna is not None
        sim.outlook.add_contact(tenant, anna, {"display_name": "Neu Kunde",
                                               "business_phones": ["089 7654321"]})
        await eventually(lambda: sync.status.notified_reads > notified_reads, clock,
                         step=0.2, wall_timeout=WALL)
        assert contacts.notifications >= 1 and handoff(b)["handed_off_contacts"] >= 1

        # A forged client state on an event notification: refused by node-b, not handed on.
        annas = next(iter(events._by_id))
        handed = b.receiver.counters["handed_off"]
        async with httpx.AsyncClient(timeout=60) as http:
            answer = await http.post(
                f"http://127.0.0.1:{b_port}{b_settings.webhook_path}",
                json={"value": [{"subscriptionId": annas, "clientState": "forged",
                                 "tenantId": TENANT_ID, "changeType": "updated",
                                 "resource": "users/x/events/y"}]})
        assert answer.status_code == 403
        assert b.receiver.counters["forged"] == 1
        assert b.receiver.counters["handed_off"] == handed

        # node-a is cut off from the database: node-b takes the tenant over and resumes
        # the kept users subscription (and every other) instead of asking Graph anew.
        posts = subscription_posts(sim)
        async with cut_off(a):
            await eventually(lambda: state(b) is KeeperState.HOLDING, clock,
                             wall_timeout=WALL)
            b_users = b.tenants["contoso"].parts.users_subscription
            assert b_users is not None
            await eventually(lambda: b_users.current is not None, clock, step=0.2,
                             wall_timeout=WALL)
            assert b_users.current is not None and b_users.current.id == first
            assert b_users.resumed == 1
            # node-a no longer answers for them: it would hand their notifications on.
            assert users.current is None and events.known(annas) is None
            assert subscription_posts(sim) == posts
            # Directory changes now come straight to node-b, the holder.
            await eventually(lambda: "carl" in matched(b), clock, step=0.2, wall_timeout=WALL)
            await in_entra(sim_server, "DELETE", "/users/carl@contoso.com")
            await eventually(lambda: matched(b) == {"anna", "ben"}, clock, step=0.2,
                             wall_timeout=WALL)
            assert b_users.notifications >= 1
