"""The NATS transport's mechanics on the real NATS server (127.0.0.1:4222, JetStream):
streams kept idempotently, a publish stored before `hand_off` returns, pulls only while
the keeper may act, and expiries seen as gaps in the tenant's sequence (never applied,
answered by reading everyone back). The two-node story is tests/e2e/test_cluster_webhooks_nats.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import nats
import pytest
from nats.js import JetStreamContext

from m365pbx.clock import SystemClock
from m365pbx.core.leases import Lease
from m365pbx.core.status import PartState
from m365pbx.service.handoff import HandoffTenant
from m365pbx.service.handoff_nats import NatsHandoff
from m365pbx.service.leases import Ownership
from m365pbx.store import Store
from m365pbx.sync.teams_to_pbx.receiver import KnownSubscription
from tests.nats_server import NATS_URL, nats_available, nats_prefix, quiet  # noqa: F401
from tests.store.conftest import (  # noqa: F401 (fixtures)
    box,
    database_url,
    engine,
    new_pg_database,
    postgres_available,
    secret_key,
    store,
)

WALL = 30.0


class Holder:
    """A tenant as the handoff sees it, with what it was given."""

    def __init__(self, store: Store) -> None:  # noqa: F811 - the imported fixture's name
        self.ownership = Ownership(store, "tenant/contoso")
        self.acting = True
        self.bodies: list[dict[str, object]] = []
        self.read_backs = 0
        self.tenant = HandoffTenant(
            "contoso", ownership=self.ownership, ready=lambda: True,
            names=lambda: ("tid", "app"), deliver=self.deliver,
            read_everyone=self.read_everyone, may_act=lambda: self.acting)

    def hold(self) -> None:
        self.ownership.lease = Lease("tenant/contoso", "node-a", 1, datetime.now(UTC))

    def deliver(self, body: str, fallback: Callable[[str], KnownSubscription | None]) -> int:
        self.bodies.append(json.loads(body))
        return 1

    def read_everyone(self) -> None:
        self.read_backs += 1


async def eventually(check: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WALL
    while not check():
        assert loop.time() < deadline, "the expected state was not reached in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(handoff: NatsHandoff) -> AsyncIterator[NatsHandoff]:
    task = asyncio.create_task(handoff.run())
    try:
        await eventually(lambda: handoff.listening)
        yield handoff
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def jetstream() -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(NATS_URL, error_cb=quiet)
    try:
        yield client.jetstream()
    finally:
        await client.close()


def node(store: Store, prefix: str, holder: Holder, lifetime: float,  # noqa: F811
         url: str = NATS_URL) -> NatsHandoff:
    return NatsHandoff(store, "node-a", SystemClock(), lifetime=lifetime,
                       tenants=lambda: [holder.tenant], url=url, prefix=prefix,
                       names=["contoso"])


async def test_published_when_acked_pulled_only_while_acting_and_expiries_seen(
    store: Store, nats_prefix: str,  # noqa: F811 - the imported fixtures
) -> None:
    holder = Holder(store)
    handoff = node(store, nats_prefix, holder, lifetime=1.5)
    async with running(handoff), jetstream() as js:
        stream = f"{nats_prefix}_handoff_contoso"
        info = await js.stream_info(stream)
        assert info.config.max_age == 1.5 and info.config.subjects == [
            f"{nats_prefix}.handoff.contoso"]

        # Stored on the server when hand_off returns (the 202 comes after this).
        handoff._stored = {"sub-1": ("contoso", "secret")}
        known = KnownSubscription("sub-1", "secret", "tid", "app")
        await handoff.hand_off([(known, {"subscriptionId": "sub-1", "n": 1})])
        assert (await js.stream_info(stream)).state.messages == 1

        # Nobody holds the tenant: the message waits, then the server drops it (max age).
        await eventually(lambda: handoff.counters["handed_off"] == 1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WALL
        while (await js.stream_info(stream)).state.messages:
            assert loop.time() < deadline
            await asyncio.sleep(0.2)
        assert holder.bodies == []

        # The holder takes the tenant: the gap is an expiry, never applied, read back.
        holder.hold()
        handoff.wake()
        await eventually(lambda: handoff.counters["expired"] == 1)
        assert holder.bodies == [] and holder.read_backs == 1

        # What is published now reaches it, in order, acked (gone from the stream).
        for n in (2, 3):
            await js.publish(f"{nats_prefix}.handoff.contoso",
                             json.dumps({"value": [{"n": n}]}).encode())
        await eventually(lambda: len(holder.bodies) == 2)
        assert [b["value"] for b in holder.bodies] == [[{"n": 2}], [{"n": 3}]]
        await eventually(lambda: handoff.statuses()[0].counters["backlog"] == 0)
        assert handoff.counters["expired"] == 1 and handoff.counters["taken"] == 2

        # The keeper may no longer act (a pause): nothing more is applied, the message waits.
        holder.acting = False
        await eventually(lambda: handoff.statuses()[0].counters["pulling"] == 0)
        await js.publish(f"{nats_prefix}.handoff.contoso", b'{"value": [{"n": 4}]}')
        await asyncio.sleep(0.5)
        assert len(holder.bodies) == 2
        [status] = handoff.statuses()
        assert status.state is PartState.OK and status.counters["listening"] == 1


async def test_a_second_start_keeps_the_stream_and_a_changed_lifetime_updates_it(
    store: Store, nats_prefix: str,  # noqa: F811 - the imported fixtures
) -> None:
    holder = Holder(store)
    async with running(node(store, nats_prefix, holder, lifetime=60.0)), jetstream() as js:
        await js.publish(f"{nats_prefix}.handoff.contoso", b'{"value": []}')
    async with running(node(store, nats_prefix, holder, lifetime=90.0)), jetstream() as js:
        info = await js.stream_info(f"{nats_prefix}_handoff_contoso")
        assert info.config.max_age == 90.0 and info.state.messages == 1  # kept, updated


async def test_an_unreachable_server_is_a_refusal_and_a_degraded_part(
    store: Store, nats_prefix: str,  # noqa: F811 - the imported fixtures
) -> None:
    holder = Holder(store)
    handoff = node(store, nats_prefix, holder, lifetime=60.0,
                   url="nats://user:pa55-Word!@127.0.0.1:9")
    task = asyncio.create_task(handoff.run())
    try:
        await eventually(lambda: handoff.statuses()[0].state is PartState.DEGRADED)
        handoff._stored = {"sub-1": ("contoso", "secret")}
        with pytest.raises(ConnectionError):
            await handoff.hand_off([(KnownSubscription("sub-1", "secret", "tid", "app"), {})])
        [status] = handoff.statuses()
        assert status.error is not None and "cannot connect to the NATS server" in status.error
        assert "pa55" not in status.error and "user:********@127.0.0.1:9" in status.error
        assert handoff.counters["handed_off"] == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
