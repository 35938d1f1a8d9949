"""Holding a job's lease while working on it: the work runs only while the lease is ours.

A `LeaseKeeper` acquires its job's lease (core/leases.py), starts the work, renews the
lease a third of the way through its lifetime and, the moment a renewal is refused or can
no longer succeed before its deadline, cancels the work, logs why and shows it (state
`lost`) before trying to acquire again. While another node holds the job it waits on
standby and tries again at each renewal interval. Stopping it releases the lease so that
another node takes over at once (a rolling restart), not only after the expiry.

With several nodes sharing the jobs (sync/balance.py) the keeper asks `may_take(job)`
before each acquire, and `give_up()` makes it stop the work and release the lease as a
stop does, then stand by: the job moves to a node under its share.

Deadlines are kept on the event loop's monotonic clock, not the service's `Clock`: the
expiry is decided by the database's real clock, and a virtual clock that jumps hours (the
tests') or a wall clock that is set back must not stretch how long this node believes it
may act. The service clock only stamps the `since` of the visible state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from m365pbx.clock import Clock
from m365pbx.core.leases import Lease, LeaseTiming
from m365pbx.sync.supervise import describe_failure

__all__ = ["KeeperState", "LeaseKeeper", "LeasePort"]

log = logging.getLogger(__name__)

RELEASE_WITHIN = 5.0
"""Seconds a stopping keeper waits for the database to take its release."""


class LeasePort(Protocol):
    """What a keeper needs from the database (service/leases.py fills it from the store)."""

    async def acquire(self, job: str, holder: str, lifetime: float) -> Lease | None:
        """Take the job if nobody holds it or its lease expired; None while another holds it."""
        ...

    async def renew(self, lease: Lease, lifetime: float) -> Lease | None:
        """Extend a live lease at its epoch; None once it expired or changed hands."""
        ...

    async def release(self, lease: Lease) -> bool:
        """End the lease now; whether it was still ours."""
        ...

    async def current(self, job: str) -> Lease | None:
        """The job's lease as the database holds it, or None."""
        ...


class KeeperState(StrEnum):
    """Where a keeper is with its job."""

    STARTING = "starting"
    HOLDING = "holding"  # the lease is ours and the work runs
    STANDBY = "standby"  # another node holds it
    LOST = "lost"  # it was ours and no longer is (or the database cannot say): work stopped
    STOPPED = "stopped"


Work = Callable[[Lease], Coroutine[Any, Any, None]]


class LeaseKeeper:
    """Runs `work(lease)` on one node at a time: only while this node holds the job's lease."""

    def __init__(self, port: LeasePort, job: str, node: str, work: Work, clock: Clock, *,
                 timing: LeaseTiming | None = None,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.port = port
        self.job = job
        self.node = node
        self.work = work
        self.clock = clock
        self.timing = timing or LeaseTiming()
        self.on_lost = on_lost
        self.state = KeeperState.STARTING
        self.since: datetime = clock.now()
        self.lease: Lease | None = None
        self.other: Lease | None = None  # the other node's lease while on standby
        self.last_error: str | None = None
        self.losses = 0
        self.acquisitions = 0
        self._confirmed: float | None = None  # loop time the held lease was last confirmed
        self.changed = asyncio.Event()  # set at each change of state (tests, status pages)
        # Balancing (sync/balance.py): whether to try the job now; None: always.
        self.may_take: Callable[[str], bool] | None = None
        self.handovers = 0  # jobs given up for balance
        self._wake = asyncio.Event()
        self._give_up = asyncio.Event()

    def wake(self) -> None:
        """Try the job now rather than at the next renewal interval (it may be taken)."""
        self._wake.set()

    def give_up(self) -> None:
        """Stop the work and release the lease (for balance); nothing unless holding."""
        if self.state is KeeperState.HOLDING:
            self._give_up.set()

    def _set(self, state: KeeperState, error: str | None = None) -> None:
        if state is not self.state or error != self.last_error:
            self.state, self.since, self.last_error = state, self.clock.now(), error
            self.changed.set()
            self.changed = asyncio.Event()

    def may_act(self) -> bool:
        """Whether this node may act on the job now: it holds the lease and the deadline
        measured from the last confirmed request has not passed (false at once after a
        pause, before the keeper has noticed the loss)."""
        confirmed = self._confirmed
        return (self.state is KeeperState.HOLDING and confirmed is not None
                and asyncio.get_running_loop().time() < self.timing.act_until(confirmed))

    async def run(self) -> None:
        """Acquire, work, renew, and on a loss stop the work and start over; until cancelled.

        The work's own end (a return or an exception) ends the keeper too, after the lease
        is released: whoever supervises the work restarts it, under a new epoch.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self.may_take is not None and not self.may_take(self.job):
                    await self._standby(balancing=True)
                    await self._pause()
                    continue
                sent = loop.time()
                try:
                    lease = await asyncio.wait_for(
                        self.port.acquire(self.job, self.node, self.timing.lifetime),
                        timeout=self.timing.renew_every)
                except Exception as exc:  # the database: shown, and tried again
                    self._unreachable(f"cannot reach the database to take the lease on "
                                      f"{self.job}: {describe_failure(exc)}")
                    await asyncio.sleep(self.timing.renew_every)
                    continue
                if lease is None:
                    await self._standby()
                    await self._pause()
                    continue
                if not await self._hold(lease, sent):
                    return
        finally:
            self._set(KeeperState.STOPPED, self.last_error
                      if self.state is KeeperState.LOST else None)

    async def _pause(self) -> None:
        """Until the next renewal interval, or until woken (the job may be taken now)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self.timing.renew_every)
        self._wake.clear()

    def _unreachable(self, reason: str) -> None:
        if self.state is not KeeperState.LOST or self.last_error != reason:
            log.warning("%s", reason)
        self._set(KeeperState.LOST if self.losses or self.acquisitions else KeeperState.STARTING,
                  reason)

    async def _standby(self, *, balancing: bool = False) -> None:
        try:
            self.other = await asyncio.wait_for(self.port.current(self.job),
                                                timeout=self.timing.renew_every)
        except Exception:  # only for the status: who holds it
            if self.state is KeeperState.LOST:
                return
        if self.state is KeeperState.LOST and (self.other is None
                                               or self.other.holder == self.node):
            return  # the loss stays shown until another node holds the job
        if self.state is not KeeperState.STANDBY:
            if balancing:
                log.info("%s stands by for %s: other nodes hold its share of the jobs",
                         self.node, self.job)
            else:
                holder = "another node" if self.other is None else repr(self.other.holder)
                log.info("%s holds %s; %s stands by", holder, self.job, self.node)
        self._set(KeeperState.STANDBY)

    async def _hold(self, lease: Lease, sent: float) -> bool:
        """Work while the lease is ours; True if it was lost or given up (try again), False
        if the work ended by itself (its exception, if any, is raised)."""
        loop = asyncio.get_running_loop()
        self.lease, self.other = lease, None
        self._confirmed = sent
        self.acquisitions += 1
        log.info("%s holds %s (epoch %d)", self.node, self.job, lease.epoch)
        self._set(KeeperState.HOLDING)
        self._give_up.clear()
        work = asyncio.create_task(self.work(lease), name=f"work on {self.job}")
        reason: str | None = None
        handing = False
        try:
            while reason is None:
                wait = self.timing.renew_at(sent) - loop.time()
                asked = asyncio.ensure_future(self._give_up.wait())
                try:
                    await asyncio.wait([work, asked], timeout=max(0.0, wait),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    asked.cancel()
                if work.done():
                    break
                if self._give_up.is_set():
                    handing = True
                    break
                lease, sent, reason = await self._renew(lease, sent)
                self.lease = lease
                if reason is None:
                    self._confirmed = sent
        finally:
            if reason is not None:
                self._confirmed = None  # nothing more on this lease, even while stopping
            if not work.done():
                work.cancel()
                # The work must have stopped before anyone else may start: wait for it.
                await asyncio.wait([work])
            if reason is None and self.lease is not None:
                await self._release(self.lease)
            self.lease, self._confirmed = None, None
        if handing:
            self.handovers += 1
            log.info("%s gave %s up for another node (balancing the jobs)", self.node, self.job)
            self._set(KeeperState.STANDBY)
            return True
        if reason is not None:
            self.losses += 1
            log.error("%s stopped working on %s: %s", self.node, self.job, reason)
            self._set(KeeperState.LOST, reason)
            if self.on_lost is not None:
                self.on_lost(reason)
            return True
        if not work.cancelled() and (failure := work.exception()) is not None:
            raise failure
        return False

    async def _renew(self, lease: Lease, sent: float) -> tuple[Lease, float, str | None]:
        """Renew until it succeeds, is refused, or the deadline passes; the reason if lost."""
        loop = asyncio.get_running_loop()
        deadline = self.timing.act_until(sent)
        pause = 0.1
        if deadline <= loop.time():
            # Nothing ran here for longer than the lease lasts: paused (SIGSTOP, a VM
            # migration) or starved. Another node may hold the job already: not a word more.
            return lease, sent, (f"the lease (epoch {lease.epoch}) ran out while this node "
                                 "was not running (paused or overloaded)")
        last = "no answer"
        while (left := deadline - loop.time()) > 0:
            attempt = loop.time()
            try:
                renewed = await asyncio.wait_for(
                    self.port.renew(lease, self.timing.lifetime), timeout=left)
            except TimeoutError:
                break
            except Exception as exc:  # the database: keep trying until the deadline
                last = describe_failure(exc)
                log.warning("renewing the lease on %s failed (%s); trying again", self.job, last)
                await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
                pause = min(pause * 2, self.timing.renew_every / 2)
                continue
            if renewed is None:
                return lease, sent, await self._refusal(lease)
            return renewed, attempt, None
        return lease, sent, (f"could not renew the lease (epoch {lease.epoch}) in time: "
                             f"{last}; stopped before it could expire")

    async def _refusal(self, lease: Lease) -> str:
        try:
            now = await asyncio.wait_for(self.port.current(self.job),
                                         timeout=self.timing.renew_every)
        except Exception:  # the refusal is the news; who holds it now is a detail
            now = None
        if now is not None and now.epoch != lease.epoch:
            self.other = now
            return (f"renewal refused: {now.holder!r} took the job over at epoch {now.epoch} "
                    f"(ours was {lease.epoch})")
        return f"renewal refused: the lease (epoch {lease.epoch}) expired before it was renewed"

    async def _release(self, lease: Lease) -> None:
        try:
            async with asyncio.timeout(RELEASE_WITHIN):
                await self.port.release(lease)
            log.info("%s released %s (epoch %d)", self.node, self.job, lease.epoch)
        except Exception as exc:  # it expires by itself; another node waits until then
            log.warning("could not release the lease on %s (%s): another node takes it over "
                        "when it expires", self.job, describe_failure(exc))
