"""SIP presence publishing against a real Kamailio, with SIPp against the same server as the limit.

Measures, with one SipConnection on loopback (Kamailio 5.6, config of tests/pbx/sip) and
SIPp (a C program) publishing the same bodies to the same Kamailio in the same run, both
with 64 requests outstanding (issue 20 §2):
- new: `--people` people publish at once (initial PUBLISH);
- modify: each changes (SIP-If-Match + new body);
- refresh: each refreshes (SIP-If-Match, no body).
Rounds alternate who goes first, each run on a fresh Kamailio; each figure is the median
over `--rounds`, and the ratio is ours / SIPp's (goal: at least 0.8). As `m365pbx serve`
does once started, `gc.freeze()` follows the connection's start.
- stop: `--stop-people` publications, then stop(): seconds until all are withdrawn (the
  limit is stop_timeout, 5 s);
- steady: `--rate` changes per second for `--seconds`; latency of each set_presence;
- notify: set_presence → NOTIFY at a separate watcher subscribed to that person.

Prints one JSON line. Needs kamailio, kamailio-presence-modules and sipp (sip-tester).
Run: .venv/bin/python bench/bench_sip.py [--people 3000] [--rounds 3] [--stop-people 6000]
     [--rate 100] [--seconds 10] [--transport udp|tcp]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.pbx.sip.kamailio

from tests.pbx.sip.kamailio import KamailioServer, missing_tools

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip import Addressing, SipConnection, SipOptions, UaConfig, UserAgent
from m365pbx.pbx.sip.fields import parse_name_addr
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.publication import Mode
from m365pbx.pbx.sip.subscription import DialogKey, Subscription

DOMAIN = "127.0.0.1"
OUTSTANDING = 64
SCENARIOS = Path(__file__).parent / "sipp"
PHASES = ("new", "modify", "refresh")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


def options(server: KamailioServer, transport: str) -> SipOptions:
    """A connection to `server` as the service builds it, keep-alive every 5 s."""
    return SipOptions(
        server=("127.0.0.1", server.port),
        addressing=Addressing(DOMAIN),
        transport=transport,  # type: ignore[arg-type]
        keepalive_interval=5.0,
        max_in_flight=OUTSTANDING,
    )


async def timed(count: int, work: Callable[[], Awaitable[object]]) -> float:
    """Requests per second of `work`, which makes `count` of them."""
    started = time.perf_counter()
    await work()
    return count / (time.perf_counter() - started)


async def ours(connection: SipConnection, users: list[PbxUser]) -> dict[str, float]:
    """New publications, changes and refreshes of `users`, per second each."""
    rates = {
        "new": await timed(len(users), lambda: asyncio.gather(
            *(connection.set_presence(user, PbxPresence.BUSY, "") for user in users))),
        "modify": await timed(len(users), lambda: asyncio.gather(
            *(connection.set_presence(user, PbxPresence.DND, "") for user in users))),
    }
    people = [connection._people[user.key] for user in users]
    rates["refresh"] = await timed(len(users), lambda: asyncio.gather(
        *(connection._publish(person, Mode.REFRESH) for person in people)))
    held = sum(1 for p in people if p.publication is not None and p.publication.active)
    if held != len(users) or connection.status().state.value != "connected":
        raise RuntimeError(f"m365pbx: {held} of {len(users)} published, {connection.status()}")
    return rates


def _sipp(server: KamailioServer, scenario: str, lines: list[str], folder: Path,
          transport: str) -> tuple[float, list[str]]:
    """Run one SIPp scenario over `lines` ("user;etag"); its call rate and the lines it logged."""
    inf = folder / f"{scenario}.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(line + "\n" for line in lines))
    log = folder / f"{scenario}.log"
    log.unlink(missing_ok=True)
    command = [
        "sipp", f"127.0.0.1:{server.port}", "-sf", str(SCENARIOS / f"publish_{scenario}.xml"),
        "-inf", str(inf), "-m", str(len(lines)), "-l", str(OUTSTANDING), "-r", "1000000",
        "-t", "u1" if transport == "udp" else "t1", "-i", "127.0.0.1", "-p", "0",
        "-nostdin", "-timeout", "300", "-trace_logs", "-log_file", str(log),
    ]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    rate = re.search(r"Call Rate\s*\|[^|]*\|\s*([\d.]+) cps", run.stdout)
    good = re.search(r"Successful call\s*\|[^|]*\|\s*(\d+)", run.stdout)
    if run.returncode != 0 or rate is None or good is None or int(good.group(1)) != len(lines):
        raise RuntimeError(f"SIPp {scenario} failed ({run.returncode}): {run.stdout[-1500:]}")
    logged = [line for line in log.read_text().splitlines() if ";" in line] if log.exists() else []
    return float(rate.group(1)), logged


def sipp(server: KamailioServer, users: list[str], folder: Path,
         transport: str) -> dict[str, float]:
    """SIPp's new publications, changes and refreshes of `users`, per second each."""
    new, etags = _sipp(server, "new", [f"{user};" for user in users], folder, transport)
    modify, etags = _sipp(server, "modify", etags, folder, transport)
    refresh, _ = _sipp(server, "refresh", etags, folder, transport)
    return {"new": new, "modify": modify, "refresh": refresh}


class Servers:
    """Fresh Kamailio servers (empty tables) in one folder, one per measured run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started = 0

    def start(self) -> KamailioServer:
        """A new Kamailio with empty tables, answering."""
        self.started += 1
        # 64 MB of shared memory (the tests' size) runs out near 2,000 presentities.
        server = KamailioServer(self.folder / f"kamailio-{self.started}", memory_mb=1024)
        server.start()
        return server


async def compare(servers: Servers, args: argparse.Namespace) -> dict[str, object]:
    """Alternating rounds of ours and SIPp's, each on a fresh Kamailio; medians and ratios.

    A fresh server each time because Kamailio's db_text tables are scanned row by row:
    whoever runs second on a shared server would meet a larger table.
    """
    mine: dict[str, list[float]] = {phase: [] for phase in PHASES}
    theirs: dict[str, list[float]] = {phase: [] for phase in PHASES}

    async def run_ours() -> None:
        server = servers.start()
        connection = SipConnection("bench", options(server, args.transport))
        await connection.start()
        gc.freeze()  # as `serve` does once started
        try:
            users = [PbxUser(f"u{n}", {"extension": f"{n}"}) for n in range(args.people)]
            for phase, rate in (await ours(connection, users)).items():
                mine[phase].append(rate)
        finally:
            await connection.stop()
            server.stop()

    async def run_sipp() -> None:
        server = servers.start()
        try:
            users = [f"s{n}" for n in range(args.people)]
            rates = await asyncio.to_thread(sipp, server, users, servers.folder, args.transport)
            for phase, rate in rates.items():
                theirs[phase].append(rate)
        finally:
            server.stop()

    for round_ in range(args.rounds):
        order = (run_ours, run_sipp) if round_ % 2 else (run_sipp, run_ours)
        for side in order:
            await side()
    report: dict[str, object] = {}
    for phase in PHASES:
        ours_rate, sipp_rate = statistics.median(mine[phase]), statistics.median(theirs[phase])
        report[f"{phase}_per_second"] = round(ours_rate)
        report[f"sipp_{phase}_per_second"] = round(sipp_rate)
        report[f"{phase}_ratio"] = round(ours_rate / sipp_rate, 2)
        report[f"{phase}_rounds"] = [round(rate) for rate in mine[phase]]
        report[f"sipp_{phase}_rounds"] = [round(rate) for rate in theirs[phase]]
        # Each round's two runs are next to each other in time: their ratio is the least
        # disturbed by other work on the machine.
        paired = [a / b for a, b in zip(mine[phase], theirs[phase], strict=True)]
        report[f"{phase}_ratio_paired"] = round(statistics.median(paired), 2)
    return report


async def stopping(servers: Servers, args: argparse.Namespace) -> dict[str, object]:
    """`--stop-people` publications, then stop(): seconds until all are withdrawn.

    The limit in the same run: SIPp removing as many publications from a fresh Kamailio.
    """
    count = args.stop_people
    server = servers.start()
    try:
        users = [f"s{n}" for n in range(count)]
        _, etags = await asyncio.to_thread(
            _sipp, server, "new", [f"{user};" for user in users], servers.folder, args.transport)
        started = time.perf_counter()
        await asyncio.to_thread(_sipp, server, "remove", etags, servers.folder, args.transport)
        sipp_seconds = time.perf_counter() - started
    finally:
        server.stop()
    server = servers.start()
    try:
        connection = SipConnection("bench-stop", options(server, args.transport))
        await connection.start()
        gc.freeze()
        people = [PbxUser(f"stop{n}", {"extension": f"stop{n}"}) for n in range(count)]
        await asyncio.gather(
            *(connection.set_presence(user, PbxPresence.AWAY, "") for user in people))
        started = time.perf_counter()
        await connection.stop()
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    left = sum(1 for p in connection._people.values()
               if p.publication is not None and p.publication.active)
    return {"stop_publications": count, "stop_seconds": round(seconds, 2),
            "stop_left_published": left, "stop_limit_seconds": connection.options.stop_timeout,
            "sipp_remove_seconds": round(sipp_seconds, 2)}


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


async def latency(servers: Servers, args: argparse.Namespace) -> dict[str, object]:
    """Steady changes and set_presence → NOTIFY, on a connection of their own."""
    server = servers.start()
    connection = SipConnection("bench-latency", options(server, args.transport))
    await connection.start()
    try:
        users = [PbxUser(f"l{n}", {"extension": f"l{n}"}) for n in range(1000)]
        latencies = await steady(connection, users, args.rate, args.seconds)
        notifies = await notify_latency(connection, server.port, args.samples)
    finally:
        await connection.stop()
        server.stop()
    return {
        "steady_rate_per_second": args.rate,
        "steady_changes": len(latencies),
        "steady_p50_ms": ms(statistics.median(latencies)),
        "steady_p99_ms": ms(percentile(latencies, 0.99)),
        "steady_max_ms": ms(max(latencies)),
        "notify_samples": len(notifies),
        "notify_p50_ms": ms(statistics.median(notifies)),
        "notify_p99_ms": ms(percentile(notifies, 0.99)),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    """Run the measurements, each against a Kamailio of its own."""
    with tempfile.TemporaryDirectory() as folder:
        servers = Servers(Path(folder))
        report: dict[str, object] = {
            "bench": "sip", "transport": args.transport, "people": args.people,
            "outstanding": OUTSTANDING, "rounds": args.rounds,
        }
        report.update(await compare(servers, args))
        if args.stop_people:
            report.update(await stopping(servers, args))
        if args.seconds:
            report.update(await latency(servers, args))
    return report


def main() -> None:
    """Parse arguments, run, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stop-people", type=int, default=6000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    args = parser.parse_args()
    missing = missing_tools()
    if missing:
        sys.exit(f"bench_sip needs {', '.join(missing)}")
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
