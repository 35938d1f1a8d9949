"""SIP presence publishing against a real Kamailio: a burst of 2,000 people, then a steady rate.

Measures, with one SipConnection on loopback (Kamailio 5.6, config of tests/pbx/sip):
- burst: 2,000 people change presence at once (initial PUBLISH, then a modify with
  SIP-If-Match for everyone); all must be published; PUBLISH per second sustained;
- steady: 100 changes per second for 10 s; latency of each set_presence (until the 2xx),
  p50 / p99 / max;
- notify: set_presence → NOTIFY at a separate watcher subscribed to that person.

Prints one JSON line. Needs kamailio, kamailio-presence-modules (Debian packages).
Run: .venv/bin/python bench/bench_sip.py [--people 2000] [--rate 100] [--seconds 10]
     [--transport udp|tcp]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pbx.sip.kamailio

from tests.pbx.sip.kamailio import KamailioServer, missing_tools

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip import Addressing, SipConnection, SipOptions, UaConfig, UserAgent
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.subscription import DialogKey, Subscription

DOMAIN = "127.0.0.1"


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


async def burst(connection: SipConnection, users: list[PbxUser], presence: PbxPresence) -> float:
    """Everyone changes at once; returns the seconds until every PUBLISH was answered."""
    started = time.perf_counter()
    await asyncio.gather(*(connection.set_presence(user, presence, "") for user in users))
    return time.perf_counter() - started


async def steady(
    connection: SipConnection, users: list[PbxUser], rate: float, seconds: float
) -> list[float]:
    """`rate` changes per second for `seconds`; returns each change's latency."""
    latencies: list[float] = []
    choices = [PbxPresence.AWAY, PbxPresence.BUSY, PbxPresence.MEETING, PbxPresence.DND]

    async def one(index: int) -> None:
        started = time.perf_counter()
        user = users[index % len(users)]
        await connection.set_presence(user, choices[index % len(choices)], f"change {index}")
        latencies.append(time.perf_counter() - started)

    loop = asyncio.get_running_loop()
    begin = loop.time()
    tasks = []
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, begin + index / rate - loop.time()))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return latencies


class _Watcher:
    """A presence subscription that timestamps every NOTIFY body."""

    def __init__(self, port: int, user: str) -> None:
        self.ua = UserAgent(UaConfig(server=("127.0.0.1", port)))
        self.registry: dict[DialogKey, Subscription] = {}
        self.arrivals: list[tuple[float, bytes]] = []
        self.arrived = asyncio.Event()
        self.ua.notify_handler = self._route
        address = f"sip:{user}@{DOMAIN}"
        self.subscription = Subscription(
            self.ua,
            address,
            f"sip:watcher@{DOMAIN}",
            "presence",
            "application/pidf+xml",
            self,
            self.registry,
            expires=600,
        )

    def _route(self, request: SipRequest) -> SipResponse:
        tag = parse_name_addr(request.headers.get("to") or "").tag or ""
        found = self.registry.get((request.call_id, tag))
        return found.handle_notify(request) if found else response_for(request, 481)

    def notified(self, subscription: Subscription, content_type: str, body: bytes) -> bool:
        self.arrivals.append((time.perf_counter(), body))
        self.arrived.set()
        return True

    def terminated(self, subscription: Subscription, reason: str, retry: float | None) -> None:
        pass

    def bad_notify(self, reason: str, detail: str) -> None:
        pass


async def notify_latency(connection: SipConnection, port: int, samples: int) -> list[float]:
    """set_presence → NOTIFY with that note at a separate watcher, `samples` times."""
    user = PbxUser("watched", {"extension": "watched"})
    watcher = _Watcher(port, "watched")
    await watcher.ua.start()
    assert (await watcher.subscription.subscribe()).ok
    latencies = []
    for index in range(samples):
        note = f"sample {index}".encode()
        started = time.perf_counter()
        await connection.set_presence(user, PbxPresence.DND, f"sample {index}")
        while not any(note in body for _, body in watcher.arrivals):
            watcher.arrived.clear()
            await watcher.arrived.wait()
        arrived = next(at for at, body in watcher.arrivals if note in body)
        latencies.append(arrived - started)
    await watcher.subscription.unsubscribe()
    await watcher.ua.close()
    return latencies


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Start Kamailio, run the three measurements, stop everything."""
    with tempfile.TemporaryDirectory() as folder:
        # 64 MB of shared memory (the tests' size) runs out near 2,000 presentities: Kamailio
        # then answers PUBLISH 200 but cannot build the NOTIFY ("Free fragment not found").
        server = KamailioServer(Path(folder), memory_mb=256)
        server.start()
        options = SipOptions(
            server=("127.0.0.1", server.port),
            addressing=Addressing(DOMAIN),
            transport=args.transport,
            keepalive_interval=5.0,
        )
        connection = SipConnection("bench", options)
        await connection.start()
        try:
            users = [PbxUser(f"u{n}", {"extension": f"{1000 + n}"}) for n in range(args.people)]
            initial = await burst(connection, users, PbxPresence.BUSY)
            modify = await burst(connection, users, PbxPresence.DND)
            published = sum(
                1
                for p in connection._people.values()
                if p.publication is not None and p.publication.active
            )
            latencies = await steady(connection, users, args.rate, args.seconds)
            notifies = await notify_latency(connection, server.port, args.samples)
            status = connection.status()
        finally:
            await connection.stop()
            server.stop()
    return {
        "bench": "sip",
        "transport": args.transport,
        "people": args.people,
        "published": published,
        "burst_initial_seconds": round(initial, 3),
        "burst_initial_publish_per_second": round(args.people / initial),
        "burst_modify_seconds": round(modify, 3),
        "burst_modify_publish_per_second": round(args.people / modify),
        "steady_rate_per_second": args.rate,
        "steady_changes": len(latencies),
        "steady_p50_ms": ms(statistics.median(latencies)),
        "steady_p99_ms": ms(percentile(latencies, 0.99)),
        "steady_max_ms": ms(max(latencies)),
        "notify_samples": len(notifies),
        "notify_p50_ms": ms(statistics.median(notifies)),
        "notify_p99_ms": ms(percentile(notifies, 0.99)),
        "status": status.state.value,
        "bad_input": connection.bad_input.total,
    }


def main() -> None:
    """Parse arguments, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    args = parser.parse_args()
    missing = missing_tools()
    if "kamailio" in missing or "kamailio-presence-modules" in missing:
        sys.exit(f"bench_sip needs {', '.join(missing)}")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
