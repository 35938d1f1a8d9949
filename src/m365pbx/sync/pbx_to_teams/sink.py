"""A TeamsSink that gathers concurrent writes into Graph `$batch` requests.

Writes from the hub's workers queue per Graph client (one writer app of one tenant). A
lone write goes out at once as a plain request; writes that arrive while others are on
their way go together, up to 20 per `$batch` (graph.md 5), session writes (calls) first.
The hub never has two writes of one person in flight, so a person's writes stay in order.

Each inner answer is its own outcome: an inner 429 becomes RetryLater with that answer's
Retry-After (the hub keeps the newest state, so nothing is dropped). A 5xx or a timeout
marks the client "down": from then on, writes wait (RetryLater) instead of piling onto
Graph, one probe write goes out at growing intervals, and the first success re-asserts
the truth by looking again at every person whose write had to wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from m365pbx.clock import Clock
from m365pbx.core.mapping import Channel
from m365pbx.core.policy import StatusAction, TeamsAction
from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import NotFound, Throttled, Unavailable
from m365pbx.sync.hub import RetryLater
from m365pbx.sync.pbx_to_teams.requests import MAX_BATCH, TeamsRequest, outcome_of, request_for
from m365pbx.sync.people import Person

log = logging.getLogger(__name__)


class Pokeable(Protocol):
    """What the sink needs from the hub: look at a person again."""

    def poke(self, person_id: int) -> None:
        """Look at a person again."""
        ...


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """How Teams writes are going, for /healthz and /metrics."""

    down: bool
    # People whose writes wait for Graph to come back.
    waiting: int
    queued: int
    down_since: float | None
    last_error: str | None
    # The oldest write on its way longer than `stall_after` without an answer: since when.
    stalled_since: float | None = None
    # When the present state (writing, stalled or held) began.
    since: float | None = None


@dataclass(eq=False)
class _Item:
    person: Person
    request: TeamsRequest
    future: asyncio.Future[None]


@dataclass(eq=False)
class _Lane:
    """The queue and health of one Graph client."""

    client: GraphClient
    urgent: deque[_Item] = field(default_factory=deque)
    normal: deque[_Item] = field(default_factory=deque)
    in_flight: int = 0
    starting: int = 0
    down: bool = False
    allow_probe: bool = False
    probe_at: float = 0.0
    probe_delay: float = 0.0
    deferred: set[int] = field(default_factory=set)
    prober: asyncio.Task[None] | None = None
    down_since: float | None = None
    # Requests on their way: when each was sent (a hung Graph shows as an old one).
    sent_at: dict[object, float] = field(default_factory=dict)

    def stalled_since(self, now: float, after: float) -> float | None:
        oldest = min(self.sent_at.values(), default=None)
        return oldest if oldest is not None and now - oldest >= after else None

    def pending(self) -> int:
        return len(self.urgent) + len(self.normal)

    def take(self, limit: int) -> list[_Item]:
        items: list[_Item] = []
        for queue in (self.urgent, self.normal):
            while queue and len(items) < limit:
                items.append(queue.popleft())
        return items


class BatchingTeamsSink:
    """Writes our sessions and preferred presence, batched, with outage handling."""

    def __init__(
        self,
        client_for: Callable[[Person], GraphClient],
        session_id_for: Callable[[Person], str],
        clock: Clock,
        *,
        max_batch: int = MAX_BATCH,
        max_in_flight: int = 4,
        probe_min: float = 1.0,
        probe_max: float = 60.0,
        outage_hold: float = 300.0,
        stall_after: float = 30.0,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self.client_for = client_for
        self.session_id_for = session_id_for
        self.clock = clock
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.probe_min = probe_min
        self.probe_max = probe_max
        self.outage_hold = outage_hold
        # A write without an answer for this long counts as a failure (Graph hangs).
        self.stall_after = stall_after
        self.counters: Counter[str] = Counter()
        self._hub: Pokeable | None = None
        self._lanes: dict[int, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_error: str | None = None
        self._writing_since = clock.now().timestamp()

    def attach(self, hub: Pokeable) -> None:
        """Let the sink ask the hub to look again at people after an outage."""
        self._hub = hub

    def down(self) -> bool:
        """Whether any Graph client is in an outage right now."""
        return any(lane.down for lane in self._lanes.values())

    def status(self) -> SinkStatus:
        """Outage state, people waiting and writes queued, across all Graph clients."""
        lanes = list(self._lanes.values())
        now = self.clock.now().timestamp()
        since = [lane.down_since for lane in lanes if lane.down and lane.down_since is not None]
        stalls = [t for lane in lanes
                  if (t := lane.stalled_since(now, self.stall_after)) is not None]
        down_since = min(since) if since else None
        stalled_since = min(stalls) if stalls else None
        return SinkStatus(
            down=any(lane.down for lane in lanes),
            waiting=sum(len(lane.deferred) for lane in lanes),
            queued=sum(lane.pending() for lane in lanes),
            down_since=down_since,
            last_error=self._last_error,
            stalled_since=stalled_since,
            since=down_since or stalled_since or self._writing_since,
        )

    async def apply(self, person: Person, action: TeamsAction | StatusAction) -> None:
        """Carry out one action; throttling and outages become RetryLater."""
        client = self.client_for(person)
        lane = self._lanes.get(id(client))
        if lane is None:
            lane = self._lanes[id(client)] = _Lane(client, probe_delay=self.probe_min)
        now = self.clock.now().timestamp()
        stalled = lane.stalled_since(now, self.stall_after)
        if stalled is not None and not lane.down:
            # No answer is a failure too: hold further writes as in an outage.
            self._last_error = (f"Graph has not answered a Teams write for {now - stalled:.0f} s "
                                "(it hangs)")
            self._went_down(lane)
        if lane.down:
            if not lane.allow_probe:
                lane.deferred.add(person.id)
                self.counters["held_during_outage"] += 1
                raise RetryLater(self._hold(), "Graph is unavailable; written once it is back")
            lane.allow_probe = False
            self.counters["probes"] += 1
        request = request_for(person.teams_user_id, self.session_id_for(person), action,
                              self.clock.now())
        item = _Item(person, request, asyncio.get_running_loop().create_future())
        urgent = isinstance(action, TeamsAction) and action.channel is Channel.SESSION
        (lane.urgent if urgent else lane.normal).append(item)
        self._kick(lane)
        await item.future

    async def aclose(self) -> None:
        """Cancel what is still on its way (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for lane in self._lanes.values():
            if lane.prober is not None:
                lane.prober.cancel()
                tasks.append(lane.prober)
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- sending ----------------------------------------------------------------------------
    def _hold(self) -> float:
        # Without a hub to poke on recovery, come back at the probe interval instead.
        return self.outage_hold if self._hub is not None else self.probe_max

    def _kick(self, lane: _Lane) -> None:
        if lane.starting == 0 and lane.in_flight < self.max_in_flight and lane.pending():
            lane.starting += 1
            lane.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, lane: _Lane) -> None:
        items: list[_Item] = []
        try:
            # One turn of the loop: writers woken by the same event join this request.
            await asyncio.sleep(0)
        finally:
            lane.starting -= 1
        try:
            items = lane.take(self.max_batch)
            self._kick(lane)
            if len(items) == 1:
                await self._send_one(lane, items[0])
            elif items:
                await self._send_batch(lane, items)
        except asyncio.CancelledError:
            for item in items:
                item.future.cancel()
            raise
        finally:
            lane.in_flight -= 1
        self._kick(lane)

    async def _send_one(self, lane: _Lane, item: _Item) -> None:
        self.counters["requests"] += 1
        key = object()
        lane.sent_at[key] = self.clock.now().timestamp()
        try:
            await lane.client.post_json("/v1.0" + item.request.path, item.request.body)
        except NotFound as exc:
            self._settle(lane, item, None if item.request.missing_is_done else exc)
        except Exception as exc:  # the hub logs it and backs off
            self._settle(lane, item, exc)
        else:
            self._settle(lane, item, None)
        finally:
            lane.sent_at.pop(key, None)

    async def _send_batch(self, lane: _Lane, items: list[_Item]) -> None:
        self.counters["requests"] += 1
        self.counters["batches"] += 1
        self.counters["batched_writes"] += len(items)
        body = {"requests": [item.request.batch_item(str(number))
                             for number, item in enumerate(items, 1)]}
        key = object()
        lane.sent_at[key] = self.clock.now().timestamp()
        try:
            answer = await lane.client.post_json("/v1.0/$batch", body)
        except Exception as exc:  # every write of the batch gets the error
            for item in items:
                self._settle(lane, item, exc)
            return
        finally:
            lane.sent_at.pop(key, None)
        responses = (answer or {}).get("responses")
        by_id = {str(r.get("id")): r for r in responses or [] if isinstance(r, dict)}
        for number, item in enumerate(items, 1):
            self._settle(lane, item, outcome_of(item.request, by_id.get(str(number))))

    # --- outcomes ---------------------------------------------------------------------------
    def _settle(self, lane: _Lane, item: _Item, error: BaseException | None) -> None:
        future = item.future
        if error is None:
            self.counters["written"] += 1
            lane.deferred.discard(item.person.id)
            self._recovered(lane)
            if not future.done():
                future.set_result(None)
            return
        result: BaseException = error
        if isinstance(error, Throttled):
            self.counters["throttled"] += 1
            result = RetryLater(error.retry_after, error.describe())
        elif isinstance(error, Unavailable):
            self.counters["unavailable"] += 1
            self._last_error = error.describe()
            self._went_down(lane)
            lane.deferred.add(item.person.id)
            result = RetryLater(self._hold(), error.describe())
        if not future.done():
            future.set_exception(result)

    def _went_down(self, lane: _Lane) -> None:
        now = self.clock.now().timestamp()
        if lane.down:
            # A failed probe: wait longer before the next one.
            lane.probe_delay = min(self.probe_max, lane.probe_delay * 2)
        else:
            log.warning("Graph is unavailable: holding Teams writes, probing every %.0f s "
                        "at most", self.probe_max)
            lane.down = True
            lane.down_since = now
            lane.probe_delay = self.probe_min
        lane.allow_probe = False
        lane.probe_at = now + lane.probe_delay
        if lane.prober is None or lane.prober.done():
            lane.prober = asyncio.get_running_loop().create_task(self._probe(lane))

    def _recovered(self, lane: _Lane) -> None:
        if not lane.down and not lane.deferred:
            return
        was_down = lane.down
        if was_down:
            log.warning("Graph answers again: writing the %d people who waited",
                        len(lane.deferred))
            self.counters["recoveries"] += 1
        lane.down = False
        lane.down_since = None
        if was_down and not any(other.down for other in self._lanes.values()):
            # Recovered: the outage's error is history, not the present state.
            self._last_error = None
            self._writing_since = self.clock.now().timestamp()
        lane.allow_probe = False
        lane.probe_delay = self.probe_min
        waited, lane.deferred = sorted(lane.deferred), set()
        if self._hub is not None:
            for person_id in waited:
                self._hub.poke(person_id)

    async def _probe(self, lane: _Lane) -> None:
        """While the client is down: at each probe time let one write through."""
        while lane.down:
            wait = lane.probe_at - self.clock.now().timestamp()
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            lane.allow_probe = True
            if lane.deferred and self._hub is not None:
                # Taken out of the waiting set: if this person has nothing left to write,
                # the next probe time picks someone else (a failed write puts them back).
                chosen = min(lane.deferred)
                lane.deferred.discard(chosen)
                self._hub.poke(chosen)
            lane.probe_at = self.clock.now().timestamp() + lane.probe_delay
