"""Start-up with 50,000 people: directory sync, matching, 77 presence subscriptions.

The simulator runs in a child process (wall clock, zero notification latency, TLS on
127.0.0.1) with 50,000 generated Teams users and 77 licensed service accounts (650 people
each; `--people 100000 --accounts 154` for the largest tenant of issue 20). m365pbx starts
in this process in webhook mode with the built-in API connection as the PBX, which
registers as many matching PBX users at once (key = mailNickname, the rule
`h323=mailNickname`). Measured from the start of `Service.run()`:

- `directory_synced_s`: Microsoft users read, matched and stored, the hub serving everyone;
- `subscriptions_s`: every service account holds a healthy subscription (77 of them);
- `first_change_s`: then one person changes presence in Teams; the PBX side shows it
  (`first_change_latency_ms` is that change alone).

`loop_stall_*` are the longest stretches, until everyone is subscribed, in which the event
loop did not come back to a task waiting 20 ms (`--stalls` logs the task steps that took
longer than 0.25 s, with asyncio's debug mode: slower, for finding them).

`peak_rss_mb` is the peak resident size of this process (m365pbx and the benchmark's list
of PBX users; the simulator is in the child). Issue targets: 50,000 people under 60 s and
400 MB; 100,000 people with 154 accounts under 90 s and 600 MB.

The limit, measured in the same run before m365pbx starts: `bare_read_s` is a plain HTTP
client reading the same user pages from the same simulator (the same `$select`, 999 a page,
TLS, JSON parsed), the least a directory sync can take on this machine right now, and
`synced_vs_bare_read` the ratio. `cpu_s` is the CPU this process used from the start until
everyone was subscribed, `simulator_cpu_s` the child's over the same span: on a machine
shared with other work the wall times stretch, the CPU seconds much less.

Prints one JSON line. Run: .venv/bin/python bench/bench_startup.py [--people 50000]
[--accounts N (default: one per 650 people)]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from m365pbx.app import Service, ServiceOptions
from m365pbx.config import load_config
from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxUser
from m365pbx.store import load_secret_box

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
SECRET = "bench~secret~value"
PASSWORD = "bench password"


# --- the simulator's side (child process) ----------------------------------------------------
async def serve_simulator(directory: Path, people: int, accounts_wanted: int) -> None:
    """Build the tenant, write what the PBX side needs, serve until stdin closes."""
    from m365sim.directory.changes import create_user
    from m365sim.directory.generate import generate_users
    from m365sim.scenario import load_scenario
    from m365sim.server import run_server
    from m365sim.simulator import SimSettings, Simulator

    sim = Simulator(settings=SimSettings(notification_latency_s=(0.0, 0.0)))
    load_scenario(sim, {"tenants": [{
        "id": TENANT, "name": "Contoso", "domains": ["contoso.com"],
        "apps": [{"app_id": APP, "name": "m365pbx", "secrets": [{"value": SECRET}],
                  "public_client": True,
                  "delegated": ["Presence.Read.All", "User.Read.All", "offline_access"],
                  "application": ["User.Read.All", "Presence.ReadWrite.All"]}],
    }]})
    tenant = sim.directory.find_tenant(TENANT)
    assert tenant is not None
    accounts = [f"svc{n}@contoso.com" for n in range(1, accounts_wanted + 1)]
    for upn in accounts:
        create_user(sim, tenant, {"userPrincipalName": upn}).password = PASSWORD
    users = generate_users(sim, tenant, users=people, seed=5, teams_share=1.0,
                           disabled_share=0.0)
    sim.subscriptions.settings.allow_http_loopback = True
    sim.settings.extra["notification_allow_http_loopback"] = True
    (directory / "directory.json").write_text(json.dumps({
        "accounts": accounts,
        "people": [[u.mail_nickname, u.display_name, u.user_principal_name] for u in users],
    }))
    async with run_server(sim, cert_dir=directory / "tls") as server:
        print(json.dumps({"url": server.url, "ca_file": str(server.ca_file)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# --- m365pbx's side (this process) -------------------------------------------------------------
def write_settings(directory: Path, url: str, ca_file: str, accounts: list[str]) -> Path:
    """m365pbx's configuration: webhook mode, the 77 accounts, one API connection."""
    import socket

    import yaml

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    data: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{directory / 'state.db'}"},
        "secrets": {"key_file": str(directory / "secret.key")},
        "microsoft": {"login_url": url, "graph_url": url, "ca_file": ca_file},
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "tenants": [{
            "name": "contoso", "tenant_id": TENANT,
            "credentials": [{"name": "graph", "client_id": APP, "client_secret": SECRET,
                             "permissions": ["presence.read", "presence.write",
                                             "users.read"]}],
            "service_accounts": [{"upn": upn, "credential": "graph", "sign_in": "password",
                                  "password": PASSWORD} for upn in accounts],
        }],
        "pbx_connections": [{"name": "pbx", "kind": "api", "tenant": "contoso",
                             "matching": {"rules": ["h323=mailNickname"]}}],
    }
    path = directory / "m365pbx.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def until(check: Callable[[], bool], limit: float, what: str) -> float:
    """Poll `check` every 20 ms; return the perf_counter time it first held."""
    deadline = time.perf_counter() + limit
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} did not happen within {limit} s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def bare_read(sim_url: str, ca_file: str) -> tuple[float, int]:
    """Seconds a plain client takes to read every user page m365pbx reads, and the users."""
    from m365pbx.graph.users import PAGE_SIZE, USER_FIELDS

    context = ssl.create_default_context(cafile=ca_file)
    async with httpx.AsyncClient(verify=context, timeout=120) as http:
        answer = await http.post(f"{sim_url}/{TENANT}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": APP, "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default"})
        answer.raise_for_status()
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        started = time.perf_counter()
        users = 0
        url: str | None = f"{sim_url}/v1.0/users"
        params: dict[str, str] | None = {"$select": ",".join(USER_FIELDS), "$top": PAGE_SIZE}
        while url:
            page = await http.get(url, params=params, headers=headers)
            page.raise_for_status()
            body = json.loads(page.content)
            users += len(body["value"])
            url, params = body.get("@odata.nextLink"), None
        return time.perf_counter() - started, users


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) of this process, or of a child still running."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class StallWatch:
    """How late the event loop comes back to a task that sleeps 20 ms at a time: the longest
    stretches it ran something else without yielding (a lease renewal, a webhook's 202 and
    every keep-alive wait that long)."""

    TICK = 0.02

    def __init__(self) -> None:
        self.stalls: list[float] = []
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.TICK)
            self.stalls.append(loop.time() - before - self.TICK)

    def report(self) -> dict[str, Any]:
        """The longest stalls, in milliseconds, and how many passed 0.5 s and 1 s."""
        self._task.cancel()
        longest = sorted(self.stalls, reverse=True)
        return {"loop_stall_max_ms": round(longest[0] * 1000) if longest else 0,
                "loop_stalls_top_ms": [round(s * 1000) for s in longest[:5]],
                "loop_stalls_over_0_5_s": sum(1 for s in longest if s > 0.5),
                "loop_stalls_over_1_s": sum(1 for s in longest if s > 1.0)}


async def measure(directory: Path, sim_url: str, ca_file: str,
                  child_pid: int) -> dict[str, Any]:
    """Start m365pbx against the running simulator and time its start-up."""
    data = json.loads((directory / "directory.json").read_text())
    people = [PbxUser(nickname, {"cn": name}) for nickname, name, _ in data["people"]]
    nickname, _, upn = data["people"][-1]  # the person who changes presence at the end
    accounts = data["accounts"]
    del data
    settings = load_config(write_settings(directory, sim_url, ca_file, accounts), environ={})
    box = load_secret_box(key_file=settings.secrets.key_file, environ={})
    bare_s, bare_users = await bare_read(sim_url, ca_file)
    cpu_before, sim_cpu_before = cpu_seconds(), cpu_seconds(child_pid)
    started = time.perf_counter()
    watch = StallWatch()
    service = Service(settings, box, ServiceOptions())
    running = asyncio.create_task(service.run())
    try:
        await until(service.started.is_set, 60, "the service start")
        pbx = service.connections["pbx"]
        assert isinstance(pbx, ApiConnection)
        pbx.replace_users(people)  # the PBX registers its users as soon as it can
        parts = service.tenants["contoso"].parts
        pool = parts.pool
        assert pool is not None
        synced = await until(lambda: parts.directory.status.last_success is not None
                             and len(service.hub.people()) == len(people), 300,
                             "the directory sync")
        subscribed = await until(lambda: all(o.healthy and o.people
                                             for o in pool.owners.values()), 300,
                                 "the subscriptions")
        cpu, sim_cpu = cpu_seconds() - cpu_before, cpu_seconds(child_pid) - sim_cpu_before
        stalls = watch.report()
        context = ssl.create_default_context(cafile=ca_file)
        async with httpx.AsyncClient(verify=context) as http:
            changed = time.perf_counter()
            answer = await http.post(f"{sim_url}/_sim/tenants/contoso.com/users/{upn}/teams",
                                     json={"preferred": {"availability": "DoNotDisturb",
                                                         "activity": "DoNotDisturb"}})
            answer.raise_for_status()
        state = pbx.shown
        shown = await until(lambda: (s := state(nickname)) is not None
                            and s.presence is PbxPresence.DND, 60, "the first change")
        return {
            "bench": "startup", "people": len(people), "matched": len(service.hub.people()),
            "service_accounts": len(pool.owners),
            "subscriptions": sum(1 for o in pool.owners.values() if o.healthy),
            "directory_synced_s": round(synced - started, 2),
            "subscriptions_s": round(subscribed - started, 2),
            "first_change_s": round(shown - started, 2),
            "first_change_latency_ms": round((shown - changed) * 1000, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cpu_s": round(cpu, 2), "simulator_cpu_s": round(sim_cpu, 2),
            "bare_read_s": round(bare_s, 2), "bare_read_users": bare_users,
            "synced_vs_bare_read": round((synced - started) / bare_s, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            **stalls,
        }
    finally:
        service.stop()
        await running


async def main(people: int, accounts: int) -> dict[str, Any]:
    """Start the simulator in a child process, then measure m365pbx's start-up."""
    asyncio.get_running_loop().slow_callback_duration = 0.25  # read in debug mode (--stalls)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name:
        directory = Path(name)
        child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything runs
            [sys.executable, __file__, "--serve-simulator", str(directory), "--people",
             str(people), "--accounts", str(accounts)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if not line:
                raise RuntimeError("the simulator did not start")
            ready = json.loads(line)
            return await measure(directory, ready["url"], ready["ca_file"], child.pid)
        finally:
            with contextlib.suppress(OSError):
                assert child.stdin is not None
                child.stdin.close()
            try:
                await asyncio.to_thread(child.wait, 10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--accounts", type=int, default=None,
                        help="service accounts (default: one per 650 people)")
    parser.add_argument("--serve-simulator", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stalls", action="store_true",
                        help="log the event loop's steps longer than 0.25 s (debug mode)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.stalls:
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    wanted = args.accounts if args.accounts is not None else math.ceil(args.people / 650)
    if args.serve_simulator is not None:
        asyncio.run(serve_simulator(args.serve_simulator, args.people, wanted))
    else:
        print(json.dumps(asyncio.run(main(args.people, wanted), debug=args.stalls)))
