"""Presence writes into a real Asterisk 22 through one AMI connection, against a plain AMI client.

Starts Asterisk from the test chroot (tests/pbx/asterisk; builds it on first use, needs root
and mmdebstrap). Measures in one run:
- writes: `--changes` presence changes through AsteriskConnection.set_presence (each is two
  Setvar actions: DEVICE_STATE(Custom:<ext>-teams) and PRESENCE_STATE(CustomPresence:<ext>)),
  at most 64 changes outstanding; and a plain asyncio AMI client (raw socket, no parsing
  beyond counting responses) sending the same actions with the same number outstanding. Both
  log in with events on. Rounds alternate who goes first; the median per side, and the ratio
  ours / plain (the plain client is the limit);
- latency: an AMI event of a person's line device → the LineStateEvent out of events()
  (`--samples` times; the line device is a Custom: one here, toggled by a second session,
  which the configuration would refuse: only so the bench needs no SIP phones).
Prints one JSON line.
Run: .venv/bin/python bench/bench_asterisk.py [--changes 5000] [--rounds 3] [--samples 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pbx.asterisk

from tests.pbx.asterisk.chroot import ensure_chroot
from tests.pbx.asterisk.server import (
    AMI_SECRET,
    AMI_USER,
    AsteriskConfig,
    AsteriskServer,
    phones,
)

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.asterisk import AmiClient, AmiOptions, AsteriskConnection, AsteriskOptions
from m365pbx.pbx.asterisk.states import device_state_for, presence_value
from m365pbx.pbx.base import LineStateEvent, PbxUser

OUTSTANDING = 64


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def users(count: int) -> list[PbxUser]:
    """Bench people 10000.. (no endpoints needed: only Custom devices are written)."""
    return [PbxUser(str(10000 + n), {"extension": str(10000 + n)}) for n in range(count)]


def presence_for(round_number: int) -> PbxPresence:
    """Alternate, so every round changes every person."""
    return (PbxPresence.DND, PbxPresence.MEETING, PbxPresence.ONLINE)[round_number % 3]


async def ours(connection: AsteriskConnection, people: list[PbxUser], presence: PbxPresence
               ) -> float:
    """Changes per second through set_presence, OUTSTANDING at a time."""
    limit = asyncio.Semaphore(OUTSTANDING)

    async def one(user: PbxUser) -> None:
        async with limit:
            await connection.set_presence(user, presence, "Weekly sync, room 4")

    started = time.perf_counter()
    await asyncio.gather(*(one(user) for user in people))
    return len(people) / (time.perf_counter() - started)


async def plain(port: int, people: list[PbxUser], presence: PbxPresence) -> float:
    """Changes per second from a bare socket client sending the same Setvar actions."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(f"Action: Login\r\nUsername: {AMI_USER}\r\nSecret: {AMI_SECRET}\r\n"
                 "Events: on\r\n\r\n".encode())
    buffer = b""
    while b"Authentication accepted" not in buffer:
        buffer += await reader.read(65536)
    actions = []
    for number, user in enumerate(people):
        ext = user.key
        actions.append(
            f"Action: Setvar\r\nActionID: d{number}\r\n"
            f"Variable: DEVICE_STATE(Custom:{ext}-teams)\r\n"
            f"Value: {device_state_for(presence)}\r\n\r\n"
            f"Action: Setvar\r\nActionID: p{number}\r\n"
            f"Variable: PRESENCE_STATE(CustomPresence:{ext})\r\n"
            f"Value: {presence_value(presence, 'Weekly sync, room 4')}\r\n\r\n".encode())
    started = time.perf_counter()
    sent = answered = 0
    tail = b""
    while answered < 2 * len(people):
        while sent < len(actions) and sent - answered // 2 < OUTSTANDING:
            writer.write(actions[sent])
            sent += 1
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("Asterisk closed the plain client's connection")
        chunk = tail + data
        answered += chunk.count(b"Response: ")
        tail = chunk[-9:]
        answered -= tail.count(b"Response: ")  # counted again with the next chunk
    elapsed = time.perf_counter() - started
    writer.close()
    return len(people) / elapsed


async def latency(server: AsteriskServer, samples: int) -> list[float]:
    """Seconds from a line device's change (sent by another session) to our event."""
    person = PbxUser("2001", {"extension": "2001"})
    connection = AsteriskConnection("bench", AsteriskOptions(
        AmiOptions("127.0.0.1", server.ami_port, AMI_USER, AMI_SECRET),
        line_device="Custom:line-{extension}", dnd_family=""))
    await connection.start()
    driver = AmiClient(AmiOptions("127.0.0.1", server.ami_port, AMI_USER, AMI_SECRET,
                                  events="off"))
    driver.start()
    await driver.wait_connected(30)
    await connection.client.wait_connected(30)
    await connection.resynced.wait()
    await connection.watch([person])
    events = connection.events().__aiter__()
    found = []
    for number in range(samples):
        state, value = ((LineState.ON_THE_PHONE, "INUSE") if number % 2 == 0
                        else (LineState.IDLE, "NOT_INUSE"))
        started = time.perf_counter()
        await driver.action("Setvar", Variable="DEVICE_STATE(Custom:line-2001)", Value=value)
        while True:
            event = await asyncio.wait_for(events.__anext__(), 10)
            if isinstance(event, LineStateEvent) and event.state is state:
                break
        found.append(time.perf_counter() - started)
    await driver.stop()
    await connection.stop()
    return found


async def main(arguments: argparse.Namespace) -> dict[str, object]:
    """Run every measurement on one Asterisk."""
    root, _ = await asyncio.to_thread(ensure_chroot)
    server = AsteriskServer(root, AsteriskConfig(phones(("2001", "Bench")), hints=False))
    await asyncio.to_thread(server.start)
    try:
        people = users(arguments.changes)
        connection = AsteriskConnection("bench", AsteriskOptions(
            AmiOptions("127.0.0.1", server.ami_port, AMI_USER, AMI_SECRET), dnd_family=""))
        await connection.start()
        await connection.client.wait_connected(30)
        await connection.resynced.wait()
        rates: dict[str, list[float]] = {"ours": [], "plain": []}
        for number in range(arguments.rounds):
            presence = presence_for(number)
            order = ("ours", "plain") if number % 2 == 0 else ("plain", "ours")
            for who in order:
                if who == "ours":
                    rates["ours"].append(await ours(connection, people, presence))
                else:
                    rates["plain"].append(await plain(server.ami_port, people,
                                                      presence_for(number + 1)))
        await connection.stop()
        delays = await latency(server, arguments.samples)
    finally:
        await asyncio.to_thread(server.remove)
    mine, limit = statistics.median(rates["ours"]), statistics.median(rates["plain"])
    return {
        "bench": "asterisk", "changes": arguments.changes, "rounds": arguments.rounds,
        "outstanding": OUTSTANDING, "changes_per_s": round(mine), "plain_changes_per_s":
        round(limit), "ratio": round(mine / limit, 2),
        "event_latency_ms": {"p50": round(statistics.median(delays) * 1000, 2),
                             "p99": round(percentile(delays, 0.99) * 1000, 2)},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
