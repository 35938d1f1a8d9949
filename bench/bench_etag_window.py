"""How long a SIP publication's new ETag is known only in memory: the window a `kill -9` hits.

Each PUBLISH's answer brings a new ETag (RFC 3903 §4.1). Until the store holds it, a node
killed in that moment leaves a publication the next holder cannot modify or remove, which
shows until it expires (docs/sip.md). This measures that window with a StoredSipConnection
as the service builds it (a real Kamailio, the store on SQLite or `--database`): `--people`
publications, then `--rate` changes a second for `--seconds`, once per gathering delay
(`--delays`, the old 1 s beside the new default). For each change: the time from the
answer to the commit of the save that carried it. The limit, in the same run: one bare
store transaction writing one publication (the window can be no shorter than a write).

Prints one JSON line: per delay the window's p50/p99/max, the saves made, the CPU seconds
the process spent, and the ratio of the default's p50 window to the bare write.
Run: .venv/bin/python bench/bench_etag_window.py [--people 2000] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pbx.sip.kamailio

from tests.pbx.sip.kamailio import KamailioServer, missing_tools

from m365pbx.clock import SystemClock
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip import Addressing, SipOptions
from m365pbx.service.publication_store import SAVE_DELAY, StoredSipConnection
from m365pbx.store import (
    PbxConnectionSpec,
    SecretBox,
    SipPublicationRecord,
    Store,
    generate_key,
    upgrade_database,
)

DOMAIN = "127.0.0.1"
CHOICES = [PbxPresence.AWAY, PbxPresence.BUSY, PbxPresence.MEETING, PbxPresence.DND]


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


async def open_store(url: str, name: str) -> Store:
    """A migrated store that knows the connection `name`."""
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    async with store.transaction() as tx:
        if await tx.pbx_connections.find(name) is None:
            await tx.pbx_connections.create(PbxConnectionSpec(name, "sip"))
    return store


async def bare_write(store: Store, name: str, samples: int = 200) -> float:
    """Median seconds of one transaction saving one publication: the window's floor."""
    async with store.transaction() as tx:
        row = await tx.pbx_connections.find(name)
    assert row is not None
    times = []
    for index in range(samples):
        record = SipPublicationRecord(f"floor{index % 10}", f"etag-{index}",
                                      datetime.now(UTC) + timedelta(minutes=10), {})
        started = time.perf_counter()
        async with store.transaction() as tx:
            await tx.sip_publications.save(row.id, [record], now=datetime.now(UTC))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def window(url: str, port: int, delay: float, args: argparse.Namespace
                 ) -> dict[str, object]:
    """The ETag window of one run with gathering delay `delay`."""
    name = f"bench-{int(delay * 1000)}ms"
    store = await open_store(url, name)
    options = SipOptions(server=("127.0.0.1", port), addressing=Addressing(DOMAIN),
                         keepalive_interval=5.0)
    connection = StoredSipConnection(name, options, store, SystemClock())
    connection.keeper.save_delay = delay
    changed_at: list[float] = []
    saves: list[tuple[float, float]] = []
    noticed = connection.on_publications_changed
    assert noticed is not None

    def on_change(key: str) -> None:
        changed_at.append(time.perf_counter())
        noticed(key)

    connection.on_publications_changed = on_change
    original = connection.keeper.save

    async def timed_save() -> None:
        started = time.perf_counter()
        await original()
        saves.append((started, time.perf_counter()))

    connection.keeper.save = timed_save  # type: ignore[method-assign]
    users = [PbxUser(f"u{n}", {"extension": f"u{n}"}) for n in range(args.people)]
    await connection.start()
    try:
        await asyncio.gather(*(connection.set_presence(u, PbxPresence.BUSY, "") for u in users))
        await asyncio.sleep(delay + 1.0)
        changed_at.clear()
        cpu = time.process_time()
        loop = asyncio.get_running_loop()
        begin = loop.time()
        tasks = []
        for index in range(int(args.rate * args.seconds)):
            await asyncio.sleep(max(0.0, begin + index / args.rate - loop.time()))
            user = users[index % len(users)]
            tasks.append(asyncio.create_task(connection.set_presence(
                user, CHOICES[index % len(CHOICES)], f"change {index}")))
        await asyncio.gather(*tasks)
        await asyncio.sleep(delay + 1.0)
        cpu = time.process_time() - cpu
    finally:
        await connection.stop()
        await store.close()
    gaps = []
    for at in changed_at:
        # The first save that began after the change carried it (it takes whoever changed).
        done = next((end for start, end in saves if start >= at), None)
        if done is not None:
            gaps.append(done - at)
    return {"delay_s": delay, "changes": len(changed_at), "measured": len(gaps),
            "saves": sum(1 for start, _ in saves if changed_at and start >= changed_at[0]),
            "window_p50_ms": ms(statistics.median(gaps)),
            "window_p99_ms": ms(percentile(gaps, 0.99)), "window_max_ms": ms(max(gaps)),
            "cpu_s": round(cpu, 2)}


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Measure the floor, then each delay against a fresh Kamailio."""
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        floor_store = await open_store(url, "floor")
        floor = await bare_write(floor_store, "floor")
        await floor_store.close()
        runs = []
        for number, delay in enumerate(args.delays):
            server = KamailioServer(Path(folder) / f"kamailio-{number}", memory_mb=1024)
            server.start()
            try:
                runs.append(await window(url, server.port, delay, args))
            finally:
                server.stop()
    default = next((r for r in runs if r["delay_s"] == SAVE_DELAY), runs[-1])
    return {"bench": "etag_window", "database": "postgresql" if args.database else "sqlite",
            "people": args.people, "rate": args.rate, "seconds": args.seconds,
            "bare_write_ms": ms(floor), "runs": runs,
            "ratio_p50_to_bare_write": round(
                float(default["window_p50_ms"]) / ms(floor), 1)}  # type: ignore[arg-type]


def main() -> None:
    """Parse arguments, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--delays", type=float, nargs="+", default=[1.0, SAVE_DELAY])
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        sys.exit(f"bench_etag_window needs {', '.join(missing)}")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
