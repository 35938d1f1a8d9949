"""Balancing jobs of different weights (a tenant weighs its people): the pure policy.

The invariants: with any weights every job ends up held and the most-loaded node carries
at most the fair load plus the heaviest job; stable weights move nothing once settled;
nothing is given up unless handing it over lowers the larger of the two loads; equal
weights plan exactly as counting jobs does; a big tenant ends up alone on its node.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.balance import plan, weigh
from m365pbx.core.leases import Lease
from m365pbx.core.nodes import NodeSeen, summarize
from tests.core.balance_world import LIFETIME, NAMES, POLICY, T0, World

# Mostly small tenants, some big ones: a tenant weighs its people, at least 1.
weight_st = st.one_of(st.integers(1, 60), st.sampled_from([1, 50, 2_000, 20_000]))
weights_st = st.lists(weight_st, max_size=10).map(
    lambda ws: {f"tenant/t{i:02d}": w for i, w in enumerate(ws)})


def loads(world: World) -> dict[str, int]:
    """Each live node's load."""
    return {node: world.load(node) for node in world.live()}


def settled_by_weight(world: World) -> None:
    """Every job held by a live node; nobody beyond the fair load plus the heaviest job."""
    live = world.live()
    assert all(holder in live for holder in world.holders().values()), world.holders()
    fair = sum(world.weights.values()) / len(live)
    heaviest = max(world.weights.values(), default=1)
    assert max(loads(world).values()) <= fair + heaviest, (loads(world), world.holders())


@settings(max_examples=200, deadline=None)
@given(weights_st, st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True),
       st.data())
def test_any_weights_settle_within_the_fair_load_plus_the_heaviest_job_then_nothing_moves(
    weights: dict[str, int], nodes: list[str], data: st.DataObject,
) -> None:
    world = World(sorted(weights), weights=weights)
    for node in nodes:
        world.join(node, age=data.draw(st.sampled_from([0.0, LIFETIME, 10 * LIFETIME])))
    for job in world.jobs:
        holder = data.draw(st.sampled_from([*nodes, "gw-gone", None]))
        if holder is not None:
            left = data.draw(st.sampled_from([-5.0, -1.0, 1.0, LIFETIME]))
            world.leases[job] = Lease(job, holder, 1, world.now + timedelta(seconds=left))
    world.run(3 * len(weights) + 12, data)
    settled_by_weight(world)
    assert set(world.releases_per_plan) <= {0, 1}
    before, moves = world.holders(), world.moves
    world.run(10, data)
    assert world.holders() == before and world.moves == moves  # no flapping


@settings(max_examples=100, deadline=None)
@given(weights_st, st.integers(2, 4), st.data())
def test_with_weights_a_node_joining_or_killed_leaves_every_job_held_and_evened_out(
    weights: dict[str, int], count: int, data: st.DataObject,
) -> None:
    world = World(sorted(weights), weights=weights)
    for node in NAMES[:count]:
        world.join(node, age=10 * LIFETIME)
    world.run(3 * len(weights) + 6, data)
    settled_by_weight(world)
    world.join("gw-new")
    world.run(3 * len(weights) + 9, data)
    settled_by_weight(world)
    killed = data.draw(st.sampled_from(world.live()))
    # kill -9: neither seen nor renewing any more, its leases lapse by themselves.
    others = [n for n in sorted(world.nodes) if n != killed]
    for _ in range(3 * len(weights) + 9):
        world.step(data.draw(st.permutations(others)))
    assert killed not in world.live()
    settled_by_weight(world)
    before = world.holders()
    for _ in range(10):
        world.step(data.draw(st.permutations(others)))
    assert world.holders() == before  # no flapping


@settings(max_examples=200, deadline=None)
@given(weights_st, st.lists(st.sampled_from(NAMES), min_size=2, max_size=5, unique=True),
       st.data())
def test_nothing_is_given_up_unless_handing_it_over_lowers_the_larger_load(
    weights: dict[str, int], nodes: list[str], data: st.DataObject,
) -> None:
    world = World(sorted(weights), weights=weights)
    for node in nodes:
        world.join(node, age=10 * LIFETIME)
    for job in world.jobs:
        world.acquire(job, data.draw(st.sampled_from(nodes)))
    load = loads(world)
    plans = {node: plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                        world.now, POLICY, weights) for node in nodes}
    given_up = {node: p.release for node, p in plans.items() if p.release is not None}
    assert len(given_up) <= 1  # one move at a time in the whole installation
    for node, job in given_up.items():
        least = min(load[n] for n in nodes if n != node)
        assert least + weights[job] < load[node]
    # When no single job could lower the larger of two loads, nothing moves at all.
    could = any(min(load[n] for n in nodes if n != holder) + weights[job] < load[holder]
                for job, holder in world.holders().items() if holder is not None)
    if not could:
        assert given_up == {}
    assert all(p.load == load[node] for node, p in plans.items())


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 12), st.lists(st.sampled_from(NAMES), min_size=1, max_size=5,
                                    unique=True), st.integers(1, 20_000), st.data())
def test_equal_weights_plan_as_counting_jobs_does(
    count: int, nodes: list[str], weight: int, data: st.DataObject,
) -> None:
    world = World([f"tenant/t{i:02d}" for i in range(count)])
    for node in nodes:
        world.join(node, age=data.draw(st.sampled_from([0.0, LIFETIME, 10 * LIFETIME])))
    for job in world.jobs:
        holder = data.draw(st.sampled_from([*nodes, "gw-gone", None]))
        if holder is not None:
            left = data.draw(st.sampled_from([-5.0, -1.0, 1.0, LIFETIME]))
            world.leases[job] = Lease(job, holder, 1, world.now + timedelta(seconds=left))
    for node in nodes:
        counted = plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                       world.now, POLICY)
        weighed = plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                       world.now, POLICY, dict.fromkeys(world.jobs, weight))
        assert (weighed.share, weighed.held, weighed.take, weighed.release) == (
            counted.share, counted.held, counted.take, counted.release)
        assert (weighed.load, weighed.target) == (weight * counted.load,
                                                  weight * counted.target)


BIG = {"tenant/big": 20_000} | {f"tenant/small{i:02d}": 50 for i in range(10)}


def one_node_holding_everything(nodes: list[str]) -> World:
    """`gw-a` holds every job; the other nodes have settled and hold nothing."""
    world = World(sorted(BIG), weights=dict(BIG))
    for node in nodes:
        world.join(node, age=100)
    for job in world.jobs:
        world.acquire(job, "gw-a")
    return world


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_a_big_tenant_ends_up_alone_and_the_small_ones_on_the_other_node(
    data: st.DataObject,
) -> None:
    world = one_node_holding_everything(["gw-a", "gw-b"])
    world.run(25, data)
    holders = world.holders()
    assert holders["tenant/big"] == "gw-a"
    assert all(holder == "gw-b" for job, holder in holders.items() if job != "tenant/big")
    # Each small tenant given up once and taken by gw-b (epoch 2), the big one never.
    assert sum(world.releases_per_plan) == 10
    assert {job: lease.epoch for job, lease in world.leases.items()} == {
        job: 1 if job == "tenant/big" else 2 for job in world.jobs}
    assert loads(world) == {"gw-a": 20_000, "gw-b": 500}


@settings(max_examples=20, deadline=None)
@given(st.data())
def test_with_three_nodes_the_small_tenants_are_shared_by_the_two_without_the_big_one(
    data: st.DataObject,
) -> None:
    world = one_node_holding_everything(["gw-a", "gw-b", "gw-c"])
    world.run(25, data)
    assert world.holders()["tenant/big"] == "gw-a"
    assert loads(world) == {"gw-a": 20_000, "gw-b": 250, "gw-c": 250}


def test_the_first_plan_gives_a_small_tenant_up_and_aims_at_the_big_one_alone() -> None:
    world = one_node_holding_everything(["gw-a", "gw-b"])
    first = plan("gw-a", world.jobs, world.leases.values(), world.nodes.values(), world.now,
                 POLICY, world.weights)
    assert (first.load, first.target, first.share) == (20_500, 20_000, 1)
    assert first.release == "tenant/small09" and first.take == frozenset()
    other = plan("gw-b", world.jobs, world.leases.values(), world.nodes.values(), world.now,
                 POLICY, world.weights)
    assert (other.load, other.target, other.share, other.release) == (0, 500, 10, None)


def test_a_job_moves_only_when_it_evens_the_loads_out_by_more_than_half_its_weight() -> None:
    world = World(["tenant/x", "tenant/y", "tenant/z"],
                  weights={"tenant/x": 100, "tenant/y": 10, "tenant/z": 95})
    world.join("gw-a", age=100)
    world.join("gw-b", age=100)
    for job, node in [("tenant/x", "gw-a"), ("tenant/y", "gw-a"), ("tenant/z", "gw-b")]:
        world.acquire(job, node)

    def decided() -> dict[str, str | None]:
        return {node: plan(node, world.jobs, world.leases.values(), world.nodes.values(),
                           world.now, POLICY, world.weights).release
                for node in ("gw-a", "gw-b")}

    # 110 against 95: moving y would only make it 100 against 105.
    assert decided() == {"gw-a": None, "gw-b": None}
    world.weights["tenant/z"] = 80  # people left z: 110 against 80, y evens it out
    assert decided() == {"gw-a": "tenant/y", "gw-b": None}
    world.leases["tenant/y"] = Lease("tenant/y", "gw-b", 2, world.leases["tenant/y"].expires_at)
    world.weights["tenant/z"] = 95  # and came back: 100 against 105, y stays
    assert decided() == {"gw-a": None, "gw-b": None}


def test_a_job_nobody_weighed_weighs_one_and_so_does_an_empty_tenant() -> None:
    assert weigh(["tenant/a", "tenant/b", "tenant/c"], {"tenant/a": 0, "tenant/b": 7}) == {
        "tenant/a": 1, "tenant/b": 7, "tenant/c": 1}


def test_summaries_show_each_nodes_load() -> None:
    now = T0
    nodes = [NodeSeen("gw-a", now, now), NodeSeen("gw-b", now, now)]
    leases = [Lease("tenant/big", "gw-a", 1, now + timedelta(seconds=2)),
              Lease("tenant/new", "gw-b", 1, now + timedelta(seconds=2)),
              Lease("tenant/small", "gw-b", 1, now + timedelta(seconds=2)),
              Lease("tenant/gone", "gw-b", 1, now - timedelta(seconds=1))]
    found = summarize(nodes, leases, now, LIFETIME,
                      {"tenant/big": 20_000, "tenant/small": 50, "tenant/gone": 7})
    assert [(s.node, s.jobs, s.load) for s in found] == [
        ("gw-a", ("tenant/big",), 20_000), ("gw-b", ("tenant/new", "tenant/small"), 51)]
