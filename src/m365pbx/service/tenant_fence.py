"""Which tenants' people this node acts for (docs/cluster.md "The presence hub").

On several nodes the presence hub holds only the people of the tenants this node runs
now: a tenant's people join it once the node has taken the tenant over and restored its
saved sessions, and leave it the moment the tenant's work stops (lost, given up, a clean
stop). Between the lease's deadline and that moment (a paused node, before its keeper
noticed) the hub still holds them, so every decision that writes to Teams or the PBX
asks `acts_for` first, which is false as soon as the lease's deadline passed, and every
save of their presence state goes through the tenant's `Ownership` (fenced by its epoch).

Each refusal is counted per tenant (the part `lease/tenant/<name>` shows `refused_writes`
and `refused_saves`) and logged once per tenant with its reason, until the node runs the
tenant again. On one node there are no keepers: it acts for everyone, unfenced.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

from m365pbx.service.leases import Ownership, Writes
from m365pbx.store import Store
from m365pbx.sync.leases import LeaseKeeper

__all__ = ["TenantFence"]

log = logging.getLogger(__name__)


class TenantFence:
    """Whether this node acts for, and saves the state of, each tenant's people."""

    def __init__(self, store: Store, node: str, keepers: Mapping[str, LeaseKeeper],
                 ownerships: Mapping[str, Ownership]) -> None:
        self.store = store
        self.node = node
        self.keepers = keepers
        self.ownerships = ownerships
        # Tenants this node acts for (taken over, saved state reloaded, work running) ...
        self.serving: set[str] = set()
        # ... and whose presence state it saves (until its last changes are saved at a
        # hand-over, a little longer than it acts).
        self.saving: set[str] = set()
        self.counters: dict[str, Counter[str]] = {}
        self._told: set[str] = set()  # tenants whose refusal was logged since served

    def serves(self, tenant: str) -> bool:
        """Whether the tenant's people belong in this node's hub."""
        return tenant not in self.keepers or tenant in self.serving

    def serve(self, tenant: str) -> None:
        """This node took the tenant over and restored its saved state: act for it."""
        self.serving.add(tenant)
        self.saving.add(tenant)
        self._told.discard(tenant)

    def stop_acting(self, tenant: str) -> None:
        """The tenant's work stops here: no more writes for its people (its last changes
        may still be saved, fenced, until `leave`)."""
        self.serving.discard(tenant)

    def leave(self, tenant: str) -> None:
        """The tenant is the next holder's: nothing of its people is saved from here."""
        self.serving.discard(tenant)
        self.saving.discard(tenant)

    def may_act(self, tenant: str) -> bool:
        """Whether this node may write to Teams or the PBX for the tenant's people now
        (false at once when the lease's deadline passed)."""
        keeper = self.keepers.get(tenant)
        return keeper is None or (tenant in self.serving and keeper.may_act())

    def acts_for(self, tenant: str) -> bool:
        """`may_act`, with a refusal counted (and logged once): the hub's decisions."""
        if self.may_act(tenant):
            return True
        self.refused(tenant, "writes", self._why_not(tenant))
        return False

    def writes_for(self, tenant: str) -> Writes | None:
        """Where the tenant's presence state is saved: the store (one node), the tenant's
        lease (fenced by its epoch), or None while this node does not hold it."""
        ownership = self.ownerships.get(tenant)
        if ownership is None:
            return self.store if tenant not in self.keepers else None
        return ownership if ownership.lease is not None and tenant in self.saving else None

    def refused(self, tenant: str, what: str, reason: str) -> None:
        """Count a refused write or save (`what`) for the tenant; log the first one."""
        self.counters.setdefault(tenant, Counter())[f"refused_{what}"] += 1
        if tenant not in self._told:
            self._told.add(tenant)
            log.warning("%s does not run tenant %s now (%s): it writes nothing to Teams or "
                        "the PBX for its people, nor saves their presence state; the node "
                        "holding the tenant does", self.node, tenant, reason)

    def counted(self, job: str) -> dict[str, int]:
        """The refusals of the tenant whose lease is `job`, for its part's counters."""
        tenant = job.removeprefix("tenant/")
        counters = self.counters.get(tenant, Counter())
        return {"refused_writes": counters["refused_writes"],
                "refused_saves": counters["refused_saves"]}

    def _why_not(self, tenant: str) -> str:
        keeper = self.keepers[tenant]
        if tenant in self.serving:
            return f"the lease on {keeper.job} is past its deadline"
        if keeper.last_error:
            return keeper.last_error
        return f"the lease on {keeper.job} is {keeper.state.value} here"
