"""balance() spreads people over service accounts as the plain rule says: existing
assignments kept where they fit, then each person to the least loaded account (by name on
a tie), nobody beyond capacity (the heap must agree with that rule)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from m365pbx.sync.teams_to_pbx.pool import balance


def reference(people: list[str], accounts: list[str], current: dict[str, tuple[str, ...]],
              capacity: int) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """The rule, one scan of every account per person."""
    if not accounts:
        return {}, sorted(set(people))
    wanted = sorted(set(people))
    share = min(capacity, max(1, math.ceil(len(wanted) / len(accounts))))
    remaining = set(wanted)
    result: dict[str, list[str]] = {account: [] for account in accounts}
    for account in accounts:
        for person in current.get(account, ()):
            if person in remaining and len(result[account]) < share:
                result[account].append(person)
                remaining.discard(person)
    for person in sorted(remaining):
        target = min(accounts, key=lambda a: (len(result[a]), a))
        if len(result[target]) >= capacity:
            break
        result[target].append(person)
        remaining.discard(person)
    return {a: tuple(sorted(p)) for a, p in result.items()}, sorted(remaining)


names = st.text(alphabet="abcdef", min_size=1, max_size=3)


@given(people=st.lists(names, max_size=40), accounts=st.lists(names, max_size=5, unique=True),
       capacity=st.integers(1, 12), data=st.data())
def test_balance_follows_the_rule(people: list[str], accounts: list[str], capacity: int,
                                  data: st.DataObject) -> None:
    current = {a: tuple(data.draw(st.lists(st.sampled_from(people or ["x"]), max_size=8)))
               for a in accounts}
    assert balance(people, accounts, current, capacity=capacity) == reference(
        people, accounts, current, capacity)


def test_the_largest_tenant_is_spread_evenly() -> None:
    people = [f"user{n:06d}" for n in range(100_000)]
    accounts = [f"svc{n:03d}@contoso.com" for n in range(154)]
    assigned, left = balance(people, accounts, {})
    sizes = [len(p) for p in assigned.values()]
    assert not left and sum(sizes) == 100_000 and max(sizes) - min(sizes) <= 1
