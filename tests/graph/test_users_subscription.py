"""The subscription on `users` that wakes the directory change rounds (issue 18/10), against
the simulator on the virtual clock: created, renewed, recreated when Graph lost it,
reauthorized, deleted at the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx

from m365pbx.graph.client import GraphClient
from m365pbx.graph.subscriptions import delete_subscription
from m365pbx.sync.mailbox_records import MemoryMailboxRecords
from m365pbx.sync.users_subscription import UsersSubscription
from m365sim.clock import VirtualClock
from m365sim.faults import FaultRule
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, TENANT_ID
from tests.sim.subscriptions.helpers import Receiver

URL = "https://m365pbx.example/graph/notifications"


async def until(check: Callable[[], bool]) -> None:
    """Wait (wall time, bounded) for `check()`."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not reached in time")


def live_users_subscriptions(sim: Simulator) -> list[str]:
    now = sim.clock.now()
    return [s.id for s in sim.subscriptions.subscriptions.values()
            if s.resource.strip("/") == "users" and s.live(now)]


def requests(sim: Simulator, method: str, suffix: str) -> int:
    return sum(1 for r in sim.faults.requests()
               if r["method"] == method and r["path"].endswith(suffix))


async def test_the_subscription_is_kept_alive_and_removed_at_the_end(
    app_client: GraphClient, sim: Simulator, clock: VirtualClock,
) -> None:
    receiver = Receiver()
    sim.subscriptions.transport = httpx.ASGITransport(app=receiver)
    woken: list[int] = []
    owner = UsersSubscription(app_client, clock, notification_url=URL,
                              lifecycle_url=URL + "/lifecycle", tenant_id=TENANT_ID,
                              app_id=APP_ID, on_change=lambda: woken.append(1))
    task = asyncio.create_task(owner.run())
    try:
        await until(lambda: owner.current is not None)
        first = owner.current
        assert first is not None and live_users_subscriptions(sim) == [first.id]
        assert receiver.validations  # Graph checked our URL before answering
        known = owner.known(first.id)
        assert known is not None and known.kind == "users" and owner.known("other") is None
        owner.notified()
        assert woken == [1]

        # Renewed well before its day is up, same id.
        await clock.advance(19 * 3600)
        await until(lambda: owner.current is not None and owner.current.expires > first.expires)
        assert owner.current is not None and owner.current.id == first.id

        # Graph lost it: the next renewal creates a new one.
        await delete_subscription(app_client, first.id)
        await clock.advance(19 * 3600)
        await until(lambda: owner.current is not None and owner.current.id != first.id)
        assert owner.last_error is None
        second = owner.current
        assert second is not None and live_users_subscriptions(sim) == [second.id]

        owner.lifecycle("reauthorizationRequired")
        await until(lambda: requests(sim, "POST", f"/{second.id}/reauthorize") == 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert live_users_subscriptions(sim) == []  # deleted on the way out


async def test_a_refused_subscription_is_shown_and_retried(
    app_client: GraphClient, sim: Simulator, clock: VirtualClock,
) -> None:
    receiver = Receiver(validation_mode="status")  # our endpoint fails Graph's validation
    sim.subscriptions.transport = httpx.ASGITransport(app=receiver)
    owner = UsersSubscription(app_client, clock, notification_url=URL, lifecycle_url=None,
                              tenant_id=TENANT_ID, app_id=APP_ID, on_change=lambda: None)
    task = asyncio.create_task(owner.run())
    try:
        await until(lambda: owner.last_error is not None)
        assert "users change notifications" in (owner.last_error or "")
        assert owner.health()["since"] is not None and owner.current is None
        receiver.validation_mode = "echo"
        await clock.advance(60)  # the first retry comes within 30–60 s
        await until(lambda: owner.current is not None)
        assert owner.last_error is None and owner.health()["error"] is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_kept_subscription_is_resumed_and_checked_by_renewing_when_not_listed(
    app_client: GraphClient, sim: Simulator, clock: VirtualClock,
) -> None:
    receiver = Receiver()
    sim.subscriptions.transport = httpx.ASGITransport(app=receiver)
    records = MemoryMailboxRecords()

    def owner() -> UsersSubscription:
        return UsersSubscription(app_client, clock, notification_url=URL,
                                 lifecycle_url=URL + "/lifecycle", tenant_id=TENANT_ID,
                                 app_id=APP_ID, on_change=lambda: None, records=records)

    async def running(subscription: UsersSubscription) -> tuple[str, str]:
        """Run until it has a subscription; stop; its id and client state."""
        task = asyncio.create_task(subscription.run())
        try:
            for _ in range(500):  # the client's retries wait on the virtual clock
                if subscription.current is not None and subscription.last_error is None and (
                        "" in records.records
                        and records.records[""].graph_id == subscription.current.id
                        and not subscription._check):
                    break
                await clock.advance(1.0)
                await asyncio.sleep(0.02)
            assert subscription.current is not None
            found = subscription.known(subscription.current.id)
            assert found is not None
            return found.id, found.client_state
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert subscription.current is None  # no longer answered for here

    first = await running(owner())
    assert live_users_subscriptions(sim) == [first[0]]  # kept in Graph at stop
    creates = requests(sim, "POST", "/subscriptions")
    # Resumed with its client state: nothing made anew.
    again = owner()
    assert await running(again) == first and again.resumed == 1
    # Graph cannot list its subscriptions: the kept one is known at once and renewed to
    # learn whether Graph still has it.
    sim.faults.add_fault(FaultRule(status=503, path_prefix="/v1.0/subscriptions",
                                   method="GET"))
    renewals = requests(sim, "PATCH", f"/subscriptions/{first[0]}")
    checked = owner()
    assert await running(checked) == first
    assert requests(sim, "PATCH", f"/subscriptions/{first[0]}") == renewals + 1
    assert requests(sim, "POST", "/subscriptions") == creates
    # Graph lost it meanwhile: the renewal says so, and a new one is made and kept.
    await delete_subscription(app_client, first[0])
    replaced = owner()
    second = await running(replaced)
    assert second[0] != first[0] and records.records[""].graph_id == second[0]
    sim.faults.clear_faults()
    assert live_users_subscriptions(sim) == [second[0]]
