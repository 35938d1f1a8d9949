"""What makes one process a node of several (docs/cluster.md): a lease keeper per tenant,
the balancing of tenants among the live nodes, and the hand-over of webhook notifications
and presence API input to the node running their tenant, through the database (webhook
notifications optionally through NATS JetStream)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from m365pbx.clock import Clock
from m365pbx.config import Settings
from m365pbx.core.leases import LeaseTiming
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxConnection
from m365pbx.service.api_cluster import ApiEverywhere
from m365pbx.service.api_directory import reload_directories
from m365pbx.service.balance import StoreRollCall, balance_status
from m365pbx.service.handoff import HandoffTenant, WebhookHandoff
from m365pbx.service.leases import Ownership, lease_statuses
from m365pbx.service.pbx_leases import decide_pbx_again, leased_sessions, tenant_keeper
from m365pbx.service.presence_view import HubPresenceView
from m365pbx.service.session_store import SessionPersistence
from m365pbx.service.tenant import TenantRuntime
from m365pbx.service.tenant_fence import TenantFence
from m365pbx.store import Store
from m365pbx.sync.balance import Balancer
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.leases import KeeperState, LeaseKeeper
from m365pbx.sync.status import StatusRegistry

if TYPE_CHECKING:
    from m365pbx.sync.teams_to_pbx.receiver import NotificationReceiver


class ClusterNode:
    """This node's share of the installation's jobs; on one node, every job is its own."""

    def __init__(self, settings: Settings, store: Store, clock: Clock, node: str, *,
                 status: StatusRegistry, view: HubPresenceView,
                 connections: Mapping[str, PbxConnection],
                 receiver: NotificationReceiver, sessions: SessionPersistence,
                 serving_changed: Callable[[], None], lease_store: Store | None = None) -> None:
        self.settings = settings
        self.store = store
        self.lease_store = lease_store or store  # the roll call goes with the renewals
        self.clock = clock
        self.node = node
        self.connections = connections
        self.receiver = receiver
        cluster = settings.cluster
        self.enabled = cluster.enabled
        self.lifetime = cluster.lease_lifetime.total_seconds()
        self.keepers: dict[str, LeaseKeeper] = {}
        self._ownerships: dict[str, Ownership] = {}
        # The hub acts for, and saves the state of, the people of the tenants run here now.
        self.fence = TenantFence(store, node, self.keepers, self._ownerships)
        self.sessions = sessions
        self.serving_changed = serving_changed
        status.add(lambda: lease_statuses(self.keepers.values(), self.fence.counted),
                   name="leases")
        # ... shared among the live nodes (sync/balance.py), set up with the keepers.
        self.balancer: Balancer | None = None
        status.add(lambda: [] if self.balancer is None else balance_status(self.balancer),
                   name="balance")
        # Notifications for a tenant another node runs go to it through the database.
        self.handoff: WebhookHandoff | None = None
        self._handoff_tenants: list[HandoffTenant] = []
        # The presence API on every node: input handed to the holder, what it shows shared.
        self.api_everywhere: ApiEverywhere | None = None
        if not self.enabled:
            return
        lifetime = cluster.handoff_lifetime.total_seconds()
        if cluster.transport == "nats":
            from m365pbx.service.handoff_nats import NatsHandoff  # only where asked for

            self.handoff = NatsHandoff(
                store, node, clock, lifetime=lifetime, tenants=lambda: self._handoff_tenants,
                url=cluster.nats_url, prefix=cluster.nats_prefix,
                names=[t.name for t in settings.tenants])
        else:
            self.handoff = WebhookHandoff(store, node, clock, lifetime=lifetime,
                                          tenants=lambda: self._handoff_tenants)
        receiver.elsewhere = self.handoff
        status.add(self.handoff.statuses, name="handoff")
        self.api_everywhere = ApiEverywhere(
            store, node, clock, view, lifetime=lifetime,
            connections_of={t.name: {c.name for c in settings.pbx_connections
                                     if c.tenant == t.name} for t in settings.tenants},
            api_connections={n: c for n, c in connections.items()
                             if isinstance(c, ApiConnection)})
        status.add(self.api_everywhere.statuses, name="api handoff")

    def runs_tenant(self, name: str) -> bool:
        """Whether this node runs the tenant: always on one node, else while holding it."""
        keeper = self.keepers.get(name)
        return keeper is None or keeper.state is KeeperState.HOLDING

    def add_tenant(self, runtime: TenantRuntime, ownership: Ownership, *, hub: PresenceHub,
                   stopping: Callable[[], bool]) -> None:
        """Run `runtime` under its tenant's lease, and take what other nodes hand it."""
        name = runtime.tenant.name
        self._ownerships[name] = ownership
        self._handoff_tenants.append(self._handoff_tenant(runtime, ownership))
        assert self.api_everywhere is not None
        self.api_everywhere.add_tenant(
            name, ownership, runs=lambda: self.runs_tenant(name),
            ready=lambda: self.fence.may_act(name) and bool(runtime.people()),
            connections={c.name: found for c in self.settings.pbx_connections
                         if c.tenant == name and isinstance(
                             found := self.connections.get(c.name), ApiConnection)})
        self.keepers[name] = tenant_keeper(
            functools.partial(self._take_over, runtime), ownership, self.node, self.clock,
            lifetime=self.lifetime,
            sessions=leased_sessions(self.connections, [
                c.name for c in self.settings.pbx_connections if c.tenant == name]),
            stopping=stopping, taken_over=functools.partial(decide_pbx_again, hub))

    def balance(self) -> None:
        """Share the tenants among the live nodes (once every tenant has its keeper)."""
        if self.keepers:
            self.balancer = Balancer(
                StoreRollCall(self.lease_store, self.lifetime), self.node,
                {keeper.job: keeper for keeper in self.keepers.values()}, self.clock,
                timing=LeaseTiming(self.lifetime))

    def people_changed(self) -> None:
        """A tenant's people are known (a takeover): what waits for this node can be taken."""
        if self.handoff is not None:
            self.handoff.wake()
        if self.api_everywhere is not None:
            self.api_everywhere.wake(full=True)

    def tasks(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        """The node's own loops, each to be run supervised."""
        found: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.balancer is not None:
            found.append(("balancing the jobs", self.balancer.run))
        if self.handoff is not None:
            found.append(("webhook handoff", self.handoff.run))
        if self.api_everywhere is not None:
            found.append(("presence API on every node", self.api_everywhere.run))
        return found

    def tenant_work(self, runtime: TenantRuntime) -> Callable[[], Awaitable[None]]:
        """What runs a tenant here: its keeper on several nodes, the tenant itself on one."""
        keeper = self.keepers.get(runtime.tenant.name)
        return runtime.run if keeper is None else keeper.run

    def _handoff_tenant(self, runtime: TenantRuntime, ownership: Ownership) -> HandoffTenant:
        name = runtime.tenant.name

        def read_everyone() -> None:
            runtime.parts.readback.want(list(runtime.teams_user_ids()))

        return HandoffTenant(
            name, ownership=ownership,
            # Handed notifications wait until the holder's hub has the tenant's people.
            ready=lambda: self.fence.may_act(name) and bool(runtime.people()),
            names=lambda: (runtime.identity.tenant_id, runtime.app_id),
            deliver=self.receiver.take_handed, read_everyone=read_everyone,
            may_act=lambda: (keeper := self.keepers.get(name)) is not None and keeper.may_act())

    async def _take_over(self, runtime: TenantRuntime) -> None:
        """Run a tenant this node holds now, with the directories and the presence state
        (sessions in Teams) saved by the node that ran it (its PBXs may have uploaded to
        any node); its people join the hub once restored and leave it when the work ends."""
        name = runtime.tenant.name
        await reload_directories(found for c in self.settings.pbx_connections
                                 if c.tenant == name
                                 and (found := self.connections.get(c.name)) is not None)
        await self.sessions.take_over(name)
        self.fence.serve(name)
        if runtime.people():
            # Known from an earlier holding (the directory does not announce the same
            # people twice). None yet: the directory's first sync brings them; until then
            # the tenant's subscriptions must not be told it has nobody.
            self.serving_changed()
        try:
            await runtime.run()
        finally:
            self.fence.stop_acting(name)
            await self.sessions.hand_over(name)
            # From here on without an await: nothing of the tenant is written in between.
            self.fence.leave(name)
            self.sessions.forget_tenant(name)
            self.serving_changed()
