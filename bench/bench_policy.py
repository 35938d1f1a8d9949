"""How many policy decisions one core makes per second, over a realistic mix of states.

Prints one JSON line: {"bench": "policy", "decisions": N, "seconds": S, "per_second": R}.
Run: .venv/bin/python bench/bench_policy.py
"""

from __future__ import annotations

import json
import random
import time

from m365pbx.core.mapping import DEFAULT_RULES, CompiledMapping
from m365pbx.core.policy import (
    LineReading,
    PbxReading,
    PersonState,
    PolicyConfig,
    TeamsReading,
    decide,
    observe_line,
    observe_pbx,
    observe_teams,
    record_session_set,
)
from m365pbx.core.presence import Activity, Availability, LineState, PbxPresence, TeamsPresence

TEAMS_STATES = [
    TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE),
    TeamsPresence(Availability.BUSY, Activity.IN_A_CALL),
    TeamsPresence(Availability.BUSY, Activity.IN_A_MEETING),
    TeamsPresence(Availability.AWAY, Activity.AWAY),
    TeamsPresence(Availability.DO_NOT_DISTURB, Activity.PRESENTING),
    TeamsPresence(Availability.OFFLINE, Activity.OFF_WORK),
]


def make_states(count: int, config: PolicyConfig, now: float) -> list[PersonState]:
    """People in every combination of Teams presence, PBX presence, line state and session."""
    rng = random.Random(42)
    states = []
    for index in range(count):
        state = PersonState()
        reading = TeamsReading(rng.choice(TEAMS_STATES), now - 30, f"{index:08d}")
        state, _ = observe_teams(state, reading, now - 30, config)
        state, _ = observe_pbx(state, PbxReading(rng.choice(list(PbxPresence)), now - 20), now,
                               config)
        state, _ = observe_line(state, LineReading(rng.choice(list(LineState)), now - 10))
        if rng.random() < 0.3:
            state = record_session_set(
                state, TeamsPresence(Availability.BUSY, Activity.IN_A_CALL), 900, now - 100
            )
        states.append(state)
    return states


def main() -> None:
    """Run the benchmark and print its JSON line."""
    config = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))
    now = 1_700_000_000.0
    states = make_states(10_000, config, now)
    rounds = 40
    start = time.perf_counter()
    for _ in range(rounds):
        for state in states:
            decide(state, now, config)
    seconds = time.perf_counter() - start
    decisions = rounds * len(states)
    print(json.dumps({"bench": "policy", "decisions": decisions, "seconds": round(seconds, 3),
                      "per_second": round(decisions / seconds)}))


if __name__ == "__main__":
    main()
