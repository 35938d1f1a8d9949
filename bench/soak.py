"""Chaos soak of several nodes (issue 25): real `m365pbx serve` processes on one PostgreSQL
database behind a load balancer, a simulated Microsoft 365 that loses, duplicates and
reorders notifications, answers 429 with Retry-After and 5xx, hands out short-lived
tokens and a skewed clock, while people change presence in Teams, phones ring and end
calls through the presence API, a node is killed (kill -9) at a fixed interval, and the
Kamailio of the tenant's SIP connection is SIGKILLed (twice by default).
What it checks afterwards: tests/e2e/chaos.py.

Prints one JSON line. Run (PostgreSQL on 127.0.0.1:5432):
    .venv/bin/python bench/soak.py [--minutes 30] [--people 5000] [--nodes 3]
        [--kill-every 300] [--changes-per-second 20] [--calls-per-second 5]
        [--lease 10s] [--sip-people 500] [--kamailio-kills 2] [--keep FOLDER]
The 3-minute version runs in CI: tests/e2e/test_soak.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.e2e.chaos

from tests.e2e.chaos import SoakOptions, SoakResult, soak
from tests.store.conftest import create_pg_database, drop_pg_database, pg_url


def main() -> None:
    """Parse the options, run the soak on a throwaway database, print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=300.0)
    parser.add_argument("--changes-per-second", type=float, default=20.0)
    parser.add_argument("--calls-per-second", type=float, default=5.0)
    parser.add_argument("--lease", default="10s", help="cluster.lease_lifetime of the nodes")
    parser.add_argument("--sip-people", type=int, default=500)
    parser.add_argument("--kamailio-kills", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the nodes' logs and files in this (new) folder")
    args = parser.parse_args()
    options = SoakOptions(minutes=args.minutes, people=args.people, nodes=args.nodes,
                          kill_every_s=args.kill_every,
                          changes_per_second=args.changes_per_second,
                          calls_per_second=args.calls_per_second,
                          sip_people=args.sip_people, kamailio_kills=args.kamailio_kills,
                          lease=args.lease)
    if args.keep is not None:
        args.keep.mkdir(parents=True)
    result = asyncio.run(_main(options, args.keep))
    print(json.dumps(asdict(result) | {"ok": result.ok}))


async def _main(options: SoakOptions, keep: Path | None) -> SoakResult:
    name = f"m365pbx_soak_{secrets.token_hex(4)}"
    await create_pg_database(name)
    try:
        if keep is not None:
            return await soak(options, pg_url(name), keep)
        with tempfile.TemporaryDirectory(prefix="m365pbx-soak-") as directory:
            return await soak(options, pg_url(name), Path(directory))
    finally:
        await drop_pg_database(name)


if __name__ == "__main__":
    main()
