"""Contacts: index memory, search and lookup latency (in process and over HTTP), sync time.

1. `contacts_index`: `--people` (50,000) people × `--contacts` (20) personal contacts, each
   with a name, company, mail and two numbers written in assorted German formats, plus a
   directory of `--people` users: the process's resident memory the index adds (RSS before
   and after building it), the build time, then `--queries` (20,000) searches (name
   prefixes, whole names, typos, numbers) and lookups (numbers in another format than the
   stored one, half unknown) by random people: p50/p99/max in microseconds.
2. `contacts_http`: the same index behind the real API routes on uvicorn (127.0.0.1),
   `--http-queries` (2,000) sequential requests of each kind over one keep-alive
   connection: p50/p99 in milliseconds (includes the key check and JSON).
3. `contacts_sync`: `--mailboxes` (1,000) simulator mailboxes with `--contacts` contacts in
   two folders, read by ContactsSync over the simulator's ASGI app (first full round):
   seconds, ms per mailbox, the extrapolation to 50,000, and Graph requests per person.
4. `contacts_store`: every person's book of that index kept as the service keeps it
   (`contact_books`, encrypted, 500 people a transaction, SQLite in a temporary directory,
   two folders with a Graph-length delta link each), then all loaded back into a new index
   as at start-up: seconds each, the database's size, and the restore against the first
   full read of everyone (13.1 ms a mailbox, docs/benchmarks.md).

Prints one JSON line per part.
Run: .venv/bin/python bench/bench_contacts.py [--people 50000] [--contacts 20]
     [--queries 20000] [--http-queries 2000] [--mailboxes 1000]
     [--parts index,http,sync,store]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import random
import socket
import statistics
import sys
import time
import uuid
from array import array
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from m365pbx.clock import SystemClock
from m365pbx.core.contacts import ContactIndex, Source, Viewer, entry
from m365pbx.graph.client import GraphClient, RetryPolicy
from m365pbx.pbx.api import MemoryApiKeyChecker
from m365pbx.pbx.api.contacts import contacts_router
from m365pbx.pbx.base import PbxUser
from m365pbx.sync.contacts import ContactsPlan, ContactsSync
from m365pbx.sync.people import Person
from m365sim.app import create_app
from m365sim.clock import VirtualClock
from m365sim.model import AppRegistration, Tenant, User
from m365sim.outlook.model import exchange_item_id
from m365sim.simulator import SimSettings, Simulator

GIVEN = ["Anna", "Jürgen", "Zoë", "Björn", "Élodie", "Mehmet", "Sofia", "Łukasz", "Ines",
         "Paul", "Chiara", "Dmitri", "Fatima", "Lars", "Noémie", "Oskar", "Renée", "Tomás"]
FAMILY = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
          "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
          "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange"]
COMPANIES = ["Fabrikam", "Contoso", "Northwind", "Litware", "Adatum", "Tailspin", "Woodgrove"]
AREAS = ["30", "40", "89", "221", "69", "711", "211", "341", "351", "170", "151", "160"]
STYLES: list[Callable[[str, str], str]] = [
    lambda a, s: f"0{a} {s}", lambda a, s: f"+49 {a} {s}",
    lambda a, s: f"+49 (0){a} {s[:3]}-{s[3:]}", lambda a, s: f"0{a}/{s}",
    lambda a, s: f"0049{a}{s}"]


def rss_mb() -> float:
    """The process's resident set size in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def number(rng: random.Random) -> tuple[str, str]:
    return rng.choice(AREAS), str(rng.randrange(1_000_000, 9_999_999))


def packed(area: str, subscriber: str) -> int:
    """One (area, subscriber) number as an int (the bench's own list stays out of the RSS)."""
    return AREAS.index(area) * 10_000_000 + int(subscriber)


def unpacked(value: int) -> tuple[str, str]:
    """The (area, subscriber) of `packed`."""
    return AREAS[value // 10_000_000], str(value % 10_000_000)


def graph_ids(rng: random.Random, count: int) -> list[str]:
    """A mailbox's contact ids shaped like Graph's (152 characters, m365sim's generator).

    Half in the default folder, half in a second one (as the sync part): the ids of one
    folder share all but their last dozen characters, those of one mailbox the first 108.
    """
    mailbox = uuid.UUID(int=rng.getrandbits(128))
    counter = rng.randrange(1 << 28)
    return [exchange_item_id(mailbox, "Kunden" if item % 2 else "Contacts", counter + item)
            for item in range(count)]


def build(people: int, contacts: int, rng: random.Random,
          long_ids: bool = False) -> tuple[ContactIndex, list[Any]]:
    """The index and the (area, subscriber) numbers it holds, per person (packed ints)."""
    index = ContactIndex()
    numbers: list[Any] = []
    for person in range(people):
        own = array("q")
        ids = graph_ids(rng, contacts) if long_ids else []
        for item in range(contacts):
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            phones = [number(rng), number(rng)]
            own.append(packed(*phones[0]))
            index.put_personal("t", f"p{person}", entry(
                ids[item] if long_ids else f"c{person}-{item}", Source.PERSONAL,
                region="DE",
                display_name=f"{given} {family}", given_name=given, surname=family,
                company=rng.choice(COMPANIES), emails=[f"{given}.{family}@example.com".lower()],
                phones=[("business", rng.choice(STYLES)(*phones[0])),
                        ("mobile", rng.choice(STYLES)(*phones[1]))]))
        numbers.append(own)
    index.replace_shared("t", Source.DIRECTORY, [
        entry(f"u{n}", Source.DIRECTORY, region="DE",
              display_name=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
              emails=[f"user{n}@contoso.com"], phones=[("business", f"+49 30 5{n:07}")])
        for n in range(people)])
    return index, numbers


def percentiles(samples: list[float], scale: float) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered) * scale, 1),
            "p99": round(ordered[int(len(ordered) * 0.99) - 1] * scale, 1),
            "max": round(ordered[-1] * scale, 1)}


def queries(numbers: list[Any], count: int, rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, person, text) for searches and lookups."""
    found: list[tuple[str, str, str]] = []
    for _ in range(count):
        person = rng.randrange(len(numbers))
        kind = rng.choice(["prefix", "whole", "typo", "number"])
        if kind == "prefix":
            text = rng.choice(FAMILY)[:3]
        elif kind == "whole":
            text = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        elif kind == "typo":
            word = rng.choice(FAMILY)
            text = word[:2] + word[3:]
        else:
            area, subscriber = unpacked(rng.choice(numbers[person]))
            text = f"0{area} {subscriber[:4]}"
        found.append(("search", f"p{person}", text))
        area, subscriber = (unpacked(rng.choice(numbers[person])) if rng.random() < 0.5
                            else number(rng))
        found.append(("lookup", f"p{person}", rng.choice(STYLES)(area, subscriber)))
    return found


def in_process(index: ContactIndex, asked: list[tuple[str, str, str]]) -> dict[str, Any]:
    """Wall time of each search and lookup, and the CPU time of this thread for it.

    The CPU time leaves out the time other processes of a busy machine had the core (at a
    load average of 4 on 2 cores, a query is often paused for a whole time slice).
    """
    times: dict[str, list[float]] = {"search": [], "lookup": []}
    cpu: dict[str, list[float]] = {"search": [], "lookup": []}
    for kind, person, text in asked:
        viewer = Viewer(person, "t", "DE")
        start, start_cpu = time.perf_counter(), time.thread_time()
        if kind == "search":
            index.search(viewer, text)
        else:
            index.lookup(viewer, text)
        cpu[kind].append(time.thread_time() - start_cpu)
        times[kind].append(time.perf_counter() - start)
    return {**{f"{kind}_us": percentiles(samples, 1e6) for kind, samples in times.items()},
            **{f"{kind}_cpu_us": percentiles(samples, 1e6) for kind, samples in cpu.items()},
            "load_average": round(os.getloadavg()[0], 2)}


async def over_http(index: ContactIndex, asked: list[tuple[str, str, str]]) -> dict[str, Any]:
    checker = MemoryApiKeyChecker()
    key = checker.add("bench", ["contacts"])
    app = FastAPI()
    app.include_router(contacts_router(
        index, lambda person, _c: [Viewer(person, "t", "DE")], checker))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # uvicorn's own listener: a socket handed in (sockets=[...]) answered every request
    # 40 ms late on this machine (Nagle against delayed ACKs), whatever the route.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    for _ in range(3000):  # uvicorn offers no event for it
        if server.started:
            break
        await asyncio.sleep(0.01)
    times: dict[str, list[float]] = {"search": [], "lookup": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        for kind, person, text in asked:
            params = ({"person": person, "q": text} if kind == "search"
                      else {"person": person, "number": text})
            start = time.perf_counter()
            answer = await http.get("/api/v1/contacts" if kind == "search" else "/api/v1/lookup",
                                    params=params)
            times[kind].append(time.perf_counter() - start)
            assert answer.status_code == 200, answer.text
    server.should_exit = True
    await task
    return {f"{kind}_ms": percentiles(samples, 1e3) for kind, samples in times.items()}


class Tokens:
    def __init__(self, sim: Simulator, tenant: Tenant) -> None:
        self.sim, self.tenant = sim, tenant

    async def token(self) -> str:
        from datetime import timedelta
        return self.sim.issuer.access_token(
            tenant_id=self.tenant.id, app_id=APP_ID, now=self.sim.clock.now(),
            lifetime=timedelta(hours=1), roles=["Contacts.Read"])

    async def invalidate(self) -> None:
        return None


APP_ID = str(uuid.UUID(int=1))


class People:
    def __init__(self, people: list[Person]) -> None:
        self.everyone = people

    def people(self) -> list[Person]:
        return self.everyone

    def on_people(self, listener: Callable[[list[Person]], None]) -> None:
        return None


async def sync_time(mailboxes: int, contacts: int, rng: random.Random) -> dict[str, Any]:
    clock = VirtualClock()
    sim = Simulator(clock, SimSettings(base_url="https://sim.test"))
    tenant = Tenant(str(uuid.UUID(int=7)), "Bench", ["bench.example"])
    tenant.apps[APP_ID] = AppRegistration(APP_ID, "bench", application_roles={"Contacts.Read"})
    sim.directory.tenants[tenant.id] = tenant
    people = []
    for n in range(mailboxes):
        user = tenant.add_user(User(str(uuid.UUID(int=1000 + n)), f"User {n}",
                                    f"user{n}@bench.example"))
        for item in range(contacts):
            area, subscriber = number(rng)
            sim.outlook.add_contact(tenant, user, {
                "display_name": f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}",
                "business_phones": [f"0{area} {subscriber}"],
                **({"folder": "Kunden"} if item % 2 else {})}, notify=False)
        people.append(Person(n + 1, "office", PbxUser(f"k{n}"), user.id, tenant="bench"))
    requests = 0

    async def count(_request: httpx.Request) -> None:
        nonlocal requests
        requests += 1

    async with httpx.AsyncClient(transport=httpx.ASGITransport(create_app(sim)),
                                 base_url="https://sim.test",
                                 event_hooks={"request": [count]}) as http:
        graph = GraphClient(Tokens(sim, tenant), http, base_url="https://sim.test", clock=clock,
                            retry=RetryPolicy(attempts=2))
        index = ContactIndex()
        sync = ContactsSync("bench", graph, index, People(people), clock,
                            lambda _p: ContactsPlan(frozenset({Source.PERSONAL}), "DE", 900.0))
        start = time.perf_counter()
        await sync.run_once()
        seconds = time.perf_counter() - start
    assert sync.status.reads == mailboxes and index.size()["personal"] == mailboxes * contacts
    return {"bench": "contacts_sync", "mailboxes": mailboxes, "contacts": contacts,
            "seconds": round(seconds, 2),
            "per_mailbox_ms": round(seconds / mailboxes * 1000, 2),
            "for_50000_s": round(seconds / mailboxes * 50_000, 1),
            "requests_per_person": round(requests / mailboxes, 2)}


async def kept(index: ContactIndex, people: int) -> dict[str, Any]:
    """Save everyone's book as the keeper does, then load them all back into a new index."""
    from m365pbx.core.contacts.packed import FORMAT
    from m365pbx.service.contacts_store import CHUNK
    from m365pbx.store import StoredBook
    from scratch_store import matched_people, scratch_store

    link = ("https://graph.microsoft.com/v1.0/users/{u}/contactFolders/{f}/contacts/delta"
            "?$deltatoken=")
    async with scratch_store() as (store, path):
        owner_of = await matched_people(store, people, "p")
        ids = sorted(owner_of)
        folders = {f"folder-{n}-{'x' * 140}": (n, link + "A" * 200) for n in (1, 2)}
        began = time.perf_counter()
        for start in range(0, len(ids), CHUNK):
            chunk = {pid: StoredBook(index.book("t", owner_of[pid]), folders, FORMAT)
                     for pid in ids[start:start + CHUNK]}
            async with store.transaction() as tx:
                await tx.contact_books.save(chunk, now=SystemClock().now())
        saved = time.perf_counter() - began
        began = time.perf_counter()
        restored = ContactIndex()
        async with store.transaction() as tx:
            loaded = await tx.contact_books.load(ids)
        for pid, book in loaded.items():
            restored.set_book("t", owner_of[pid], book.records)
        loaded_s = time.perf_counter() - began
        assert restored.size()["personal"] == index.size()["personal"]
        size = path.stat().st_size
    first_reads = 13.1 / 1000 * people
    return {"bench": "contacts_store", "people": people,
            "contacts": restored.size()["personal"], "save_s": round(saved, 1),
            "load_s": round(loaded_s, 1), "db_mb": round(size / 1e6, 1),
            "load_vs_first_reads": round(loaded_s / first_reads, 3)}


def main() -> None:
    """Run the three parts and print their JSON lines."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--http-queries", type=int, default=2_000)
    parser.add_argument("--mailboxes", type=int, default=1_000)
    parser.add_argument("--long-ids", action="store_true",
                        help="personal contact ids shaped like Graph's (152 characters)")
    parser.add_argument("--keep-sniffio-miss", action="store_true",
                        help="let httpcore search for the missing sniffio at each request")
    parser.add_argument("--parts", default="index,http,sync",
                        help="which parts to run, comma-separated (index always runs)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not args.keep_sniffio_miss and importlib.util.find_spec("sniffio") is None:
        # httpcore imports sniffio at every request; missing, each attempt searches sys.path
        # again (about 0.4 ms, several a request): the bench's own client, not the server.
        # A None entry makes the import fail at once.
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    rng = random.Random(23)
    entry("warm", Source.PERSONAL, region="DE", phones=[("business", "030 1234567")])
    gc.collect()
    before = rss_mb()  # phonenumbers' metadata for DE is loaded: not the index's
    start = time.perf_counter()
    gc.collect()  # the rest of the process's heap, for the one below
    empty_gc = time.perf_counter() - start
    start = time.perf_counter()
    index, numbers = build(args.people, args.contacts, rng, args.long_ids)
    built = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    gc.collect()  # what a full collection costs with the index in the heap
    full_gc = time.perf_counter() - start
    size = index.size()
    asked = queries(numbers, args.queries, rng)
    result = {"bench": "contacts_index", "people": args.people, "long_ids": args.long_ids,
              "entries": sum(size.values()), "index_mb": round(rss_mb() - before, 1),
              "build_s": round(built, 1), "full_gc_ms": round(full_gc * 1000, 1),
              "full_gc_without_index_ms": round(empty_gc * 1000, 1),
              **in_process(index, asked)}
    print(json.dumps(result), flush=True)
    if "http" in parts:
        http = asyncio.run(over_http(index, asked[: 2 * args.http_queries]))
        print(json.dumps({"bench": "contacts_http", "requests": 2 * args.http_queries, **http}),
              flush=True)
    if "store" in parts:
        print(json.dumps(asyncio.run(kept(index, args.people))), flush=True)
    del index, numbers
    gc.collect()
    if "sync" in parts:
        print(json.dumps(asyncio.run(sync_time(args.mailboxes, args.contacts, rng))),
              flush=True)


if __name__ == "__main__":
    main()
