"""Balancing jobs among nodes (issue 25): the pure policy, simulated round by round.

A round is one renewal interval: every live node renews its leases, is seen, makes its
plan from the shared rows and acts on it (one release at most, the free jobs it may take)
in an order hypothesis draws. The invariants: every job ends up held, nobody holds more
than its share once the membership is stable, and a stable membership moves nothing.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.balance import members, plan
from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen, summarize
from tests.core.balance_world import LIFETIME, NAMES, POLICY, ROUND, T0, World, settled

jobs_st = st.integers(0, 12).map(lambda j: [f"tenant/t{i:02d}" for i in range(j)])


@settings(max_examples=150, deadline=None)
@given(jobs_st, st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True),
       st.data())
def test_any_start_settles_on_the_shares_and_then_nothing_moves(
    jobs: list[str], nodes: list[str], data: st.DataObject,
) -> None:
    world = World(jobs)
    for node in nodes:
        world.join(node, age=data.draw(st.sampled_from([0.0, LIFETIME, 10 * LIFETIME])))
    # Any leases to start with: held by a node, by one that is gone, expired, or none.
    for job in jobs:
        holder = data.draw(st.sampled_from([*nodes, "gw-gone", None]))
        if holder is not None:
            left = data.draw(st.sampled_from([-5.0, -1.0, 1.0, LIFETIME]))
            world.leases[job] = Lease(job, holder, 1, world.now + timedelta(seconds=left))
    world.run(2 * len(jobs) + 12, data)
    settled(world)
    assert set(world.releases_per_plan) <= {0, 1}
    before, moves = world.holders(), world.moves
    world.run(10, data)
    assert world.holders() == before and world.moves == moves  # no flapping


@settings(max_examples=100, deadline=None)
@given(jobs_st, st.integers(1, 3), st.data())
def test_a_node_joining_counts_only_once_settled_and_a_node_leaving_leaves_nothing_unheld(
    jobs: list[str], count: int, data: st.DataObject,
) -> None:
    world = World(jobs)
    for node in NAMES[:count]:
        world.join(node, age=10 * LIFETIME)
    world.run(len(jobs) + 6, data)
    settled(world)
    # A new node: nothing moves before it has been live for `settle`.
    before, moves = world.holders(), world.moves
    world.join("gw-new")
    world.run(int(POLICY.settle / ROUND) - 1, data)
    assert world.holders() == before and world.moves == moves
    world.run(2 * len(jobs) + 6, data)
    settled(world)
    # A member stops cleanly: its jobs are released and held again by the others.
    leaving = data.draw(st.sampled_from(world.live()))
    world.stop(leaving)
    world.run(2 * len(jobs) + 6, data)
    settled(world)
    assert world.held_by(leaving) == 0


@settings(max_examples=100, deadline=None)
@given(jobs_st, st.integers(2, 4), st.data())
def test_a_node_killed_leaves_no_job_without_a_holder(
    jobs: list[str], count: int, data: st.DataObject,
) -> None:
    world = World(jobs)
    for node in NAMES[:count]:
        world.join(node, age=10 * LIFETIME)
    world.run(2 * len(jobs) + 6, data)
    settled(world)
    killed = data.draw(st.sampled_from(world.live()))
    # kill -9: neither seen nor renewing any more, its leases lapse by themselves.
    others = [n for n in sorted(world.nodes) if n != killed]
    for _ in range(2 * len(jobs) + 9):
        world.step(data.draw(st.permutations(others)))
    assert killed not in world.live()
    settled(world)


def test_a_member_over_its_share_gives_up_one_job_at_a_time() -> None:
    world = World([f"tenant/t{i}" for i in range(4)])
    world.join("gw-a", age=100)
    for job in world.jobs:
        world.acquire(job, "gw-a")
    world.join("gw-b", age=100)
    first = plan("gw-a", world.jobs, world.leases.values(), world.nodes.values(), world.now,
                 POLICY)
    assert (first.share, len(first.held), first.release) == (2, 4, "tenant/t3")
    assert first.take == frozenset()
    other = plan("gw-b", world.jobs, world.leases.values(), world.nodes.values(), world.now,
                 POLICY)
    assert (other.share, other.held, other.take, other.release) == (2, (), frozenset(), None)


def test_a_node_coming_back_does_not_pull_a_job_back() -> None:
    world = World(["tenant/a"])
    world.join("gw-b", age=100)
    world.acquire("tenant/a", "gw-b")
    world.join("gw-a", age=100)  # first by id, and settled: still nothing to do
    for node in ("gw-a", "gw-b"):
        decided = plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                       world.now, POLICY)
        assert (decided.take, decided.release) == (frozenset(), None)


def test_too_many_holding_one_more_the_last_by_id_gives_one_up() -> None:
    world = World([f"tenant/t{i}" for i in range(4)])
    for node in ("gw-a", "gw-b", "gw-c"):
        world.join(node, age=100)
    for job, node in zip(world.jobs, ["gw-a", "gw-a", "gw-b", "gw-b"], strict=True):
        world.acquire(job, node)
    decided = {node: plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                          world.now, POLICY) for node in ("gw-a", "gw-b", "gw-c")}
    assert [(d.share, d.release) for d in decided.values()] == [
        (2, None), (1, "tenant/t3"), (1, None)]


def test_a_new_node_does_not_count_until_settled_unless_nobody_has() -> None:
    world = World(["tenant/a"])
    world.join("gw-a", age=1.0)
    world.join("gw-b", age=0.5)
    assert members(world.nodes.values(), world.now, POLICY) == ("gw-a", "gw-b")
    world.join("gw-c", age=LIFETIME)
    assert members(world.nodes.values(), world.now, POLICY) == ("gw-c",)
    alone = plan("gw-a", world.jobs, [], world.nodes.values(), world.now, POLICY)
    assert alone.share == 0 and alone.take == frozenset()  # not past the grace yet


def test_summaries_show_live_and_gone_nodes_with_their_jobs() -> None:
    now = T0
    nodes = [NodeSeen("gw-b", now, now), NodeSeen("gw-a", now, now - timedelta(seconds=9)),
             NodeSeen("gw-c", now, now, stopped_at=now)]
    leases = [Lease("tenant/x", "gw-b", 3, now + timedelta(seconds=2)),
              Lease("tenant/y", "gw-a", 1, now - timedelta(seconds=1))]
    found = summarize(nodes, leases, now, LIFETIME)
    assert [(s.node, s.live, s.jobs) for s in found] == [
        ("gw-b", True, ("tenant/x",)), ("gw-a", False, ()), ("gw-c", False, ())]


def test_a_job_its_holder_lost_is_tried_at_once_by_another_node() -> None:
    # gw-a, first by id, let its lease lapse (cut off from the database, or killed) but
    # still counts until a lifetime after it was last seen: gw-b tries the job at once.
    world = World(["tenant/a"])
    for node in ("gw-a", "gw-b"):
        world.join(node, age=100)
    world.leases["tenant/a"] = Lease("tenant/a", "gw-a", 4, world.now - timedelta(seconds=0.1))
    decided = {node: plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                          world.now, POLICY) for node in ("gw-a", "gw-b")}
    assert members(world.nodes.values(), world.now, POLICY) == ("gw-a", "gw-b")
    assert decided["gw-b"].take == frozenset({"tenant/a"})
    assert decided["gw-a"].take == frozenset()
