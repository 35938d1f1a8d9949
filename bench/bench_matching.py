"""Benchmark: `m365pbx match --format json` on 50,000 × 50,000 users; prints one JSON line.

Usage: .venv/bin/python bench/bench_matching.py [--users 50000] [--seed 365] [--rule A=B ...]
       [--repeat 3] [--in-process]

The data is generated from a seed: realistic German/European names with collisions (duplicate
display names), accents in NFD on the PBX side for part of the users, e-mail aliases in
proxyAddresses (secondary ones partly in upper case), phone numbers written differently on
each side, disabled and unlicensed accounts, PBX-only devices (rooms, fax) and Microsoft-only
users. The Microsoft users are written as Graph returns them, in pages of 999 users with
@odata.nextLink; the PBX users as a CSV export.

The whole command runs as a process, as an admin runs it. Its limit is measured in the same
run: a Python process that only reads the same two files (`json.load` of the Graph pages,
`csv.reader` over the export, the cyclic collector off as in the command), the bare cost of
the input. `ratio_to_ceiling` is the
command's wall time over that limit's (medians of `--repeat` alternating runs), and
`cpu_ratio_to_ceiling` the same for CPU time (user + system), which other work on a shared
machine disturbs less than wall time; CPU time and peak RSS of each process come from
`os.wait4`. Both run with bytecode cached, as an installed package does (one untimed run of
each first). `--in-process` times `match_users` alone instead (the figure of issue 10).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from m365pbx.core.matching import MatchOptions, PbxUser, match_users, parse_rule

_FIRST_NAMES = (
    "Anna Ben Clara David Emma Felix Greta Hannah Ida Jonas Karl Lea Lukas Marie Mia Noah Ole "
    "Paul Quirin Rosa Sophie Tim Ute Vera Wilhelm Xaver Yvonne Zoë Jürgen Jörg Björn Sören "
    "Thomas Stefan Michael Andreas Sabine Petra Monika Ursula Renée José Inés Núria Łukasz "
    "Agnieszka Małgorzata Søren Åsa Ingrid Kristina Jan Jakob Johanna Julia Laura Lena Lisa "
    "Maximilian Moritz Niklas Philipp Sebastian Simon Tobias Valentin Elias Finn Henri Leon "
    "Matteo Emil Anton Theo Frieda Mathilda Charlotte Amelie Luise Helene Ella Nele Marlene "
    "François Hélène Chloé Zoé Loïc Gaël Ana Tomáš Jiří Dušan Zsófia Gergő Ömer Ayşe Çağla"
)
_SURNAME_STEMS = (
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
    "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann "
    "Lange Schmitt Werner Krause Meier Lehmann Köhler Herrmann König Walter Mayer Huber Kaiser "
    "Fuchs Peters Lang Scholz Möller Weiß Jung Hahn Vogel Friedrich Keller Günther Frank Berger "
    "Winkler Roth Beck Lorenz Baumann Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus "
    "Martin Schumacher Krämer Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas "
    "Schreiber Graf Schulte Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Thomas "
    "Voigt Sauer Arnold Wolff Pfeiffer García López Dvořák Nowak Kowalski Wiśniewski Sørensen "
    "Ångström Øster Lefèvre Moreau Dubois Horváth Nagy Yılmaz Öztürk Rossi Bianchi"
)
FIRST_NAMES = _FIRST_NAMES.split()
SURNAME_STEMS = _SURNAME_STEMS.split()
SURNAME_SUFFIXES = ("", "", "", "-Lang", "mann", "er", "bach", "berg", "feld", "hofer", "inger")
DEPARTMENTS = ("Vertrieb", "Einkauf", "IT", "Lager", "Service", "Personal", "Marketing")
TEAMS_PLAN = {"service": "TeamspaceAPI", "capabilityStatus": "Enabled"}
EXCHANGE_PLAN = {"service": "exchange", "capabilityStatus": "Enabled"}
DEFAULT_RULES = ("cn=displayName", "email=proxyAddresses", "extension=businessPhones")
GRAPH_PAGE = 999
GRAPH_USERS = "https://graph.microsoft.com/v1.0/users"
PBX_COLUMNS = ("h323", "cn", "email", "extension", "department")


def ascii_fold(text: str) -> str:
    """A crude ASCII spelling, as PBX admins often type names."""
    table = str.maketrans("äöüÄÖÜßéèêáíóúñçøåłśęčřšžőűışğÉ", "aouAOUseeeaiouncoalsecrszouisgE")
    return text.translate(table)


def generate(count: int, seed: int) -> tuple[list[PbxUser], list[dict[str, Any]]]:
    """Return (pbx_users, microsoft_users), both shuffled, deterministically from the seed."""
    rng = random.Random(seed)
    teams_users: list[dict[str, Any]] = []
    pbx_users: list[PbxUser] = []
    nicknames: set[str] = set()
    numbers = rng.sample(range(1_000_000, 9_999_999), count * 2)
    paired = int(count * 0.95)
    for number in range(count):
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(SURNAME_STEMS) + rng.choice(SURNAME_SUFFIXES)
        display = f"{first} {last}"
        base = ascii_fold(f"{first}.{last}").lower().replace(" ", "")
        nick, serial = base, 1
        while nick in nicknames:
            serial += 1
            nick = f"{base}{serial}"
        nicknames.add(nick)
        mail = f"{nick}@contoso.com"
        alias = f"{ascii_fold(first)[0]}.{ascii_fold(last)}{serial}".lower() + "@contoso.com"
        proxies = [f"SMTP:{mail}", f"smtp:{nick}@contoso.onmicrosoft.com"]
        if rng.random() < 0.3:
            # Secondary addresses as some tenants hold them: the address in upper case.
            proxies.append(f"smtp:{alias.upper()}" if rng.random() < 0.5 else f"smtp:{alias}")
        phone = numbers[number]
        user: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "displayName": display,
            "mail": mail,
            "mailNickname": nick,
            "userPrincipalName": mail,
            "proxyAddresses": proxies,
            "businessPhones": [f"+49 30 {phone}"],
            "mobilePhone": f"+49 171 {numbers[count + number]}" if rng.random() < 0.4 else None,
            "department": rng.choice(DEPARTMENTS),
            "accountEnabled": rng.random() > 0.02,
            "assignedPlans": [EXCHANGE_PLAN, TEAMS_PLAN] if rng.random() > 0.05 else [],
        }
        teams_users.append(user)
        if number >= paired:
            continue
        cn = display
        roll = rng.random()
        if roll < 0.10:
            cn = ascii_fold(display)
        elif roll < 0.15:
            cn = display.upper()
        elif roll < 0.18:
            cn = f"{last}, {first}"
        if rng.random() < 0.5:
            cn = unicodedata.normalize("NFD", cn)  # as some PBX exports (macOS, LDAP) write it
        has_alias = any(proxy.lower() == f"smtp:{alias}" for proxy in proxies)
        fields = {
            "cn": cn,
            "email": alias if has_alias and rng.random() < 0.5 else mail,
            "extension": f"030 {phone}" if rng.random() < 0.7 else f"+49 (30) {phone}",
            "department": user["department"],
        }
        pbx_users.append(PbxUser(f"{nick}", fields))
    for number in range(count - paired):
        kind = rng.choice(("Raum", "Fax", "Empfang", "Lager", "Pforte"))
        fields = {"cn": f"{kind} {number}", "extension": f"030 {rng.randrange(10**6, 10**7)}"}
        pbx_users.append(PbxUser(f"dev{number}", fields))
    rng.shuffle(pbx_users)
    rng.shuffle(teams_users)
    return pbx_users, teams_users


def write_inputs(
    pbx_users: list[PbxUser], teams_users: list[dict[str, Any]], directory: Path
) -> tuple[Path, Path]:
    """Write the PBX users as a CSV export and the Microsoft users as Graph pages of 999."""
    pbx_file = directory / "pbx-users.csv"
    with pbx_file.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(PBX_COLUMNS)
        for user in pbx_users:
            writer.writerow([user.key, *(user.value(column) or "" for column in PBX_COLUMNS[1:])])
    pages = []
    for start in range(0, len(teams_users), GRAPH_PAGE):
        page: dict[str, Any] = {"@odata.context": f"{GRAPH_USERS}/$metadata#users",
                                "value": teams_users[start:start + GRAPH_PAGE]}
        if start + GRAPH_PAGE < len(teams_users):
            page["@odata.nextLink"] = f"{GRAPH_USERS}?$skiptoken=page{start // GRAPH_PAGE + 1}"
        pages.append(page)
    teams_file = directory / "teams-users.json"
    teams_file.write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
    return pbx_file, teams_file


def installed_environment(directory: Path) -> dict[str, str]:
    """The environment of the timed processes: Python reads and writes bytecode, as it does
    for an installed package (pip compiles it when it installs). Development shells often set
    PYTHONDONTWRITEBYTECODE, and then every run compiled m365pbx's modules from source again
    (about 40 of them for `match`: 0.05-0.1 s of CPU); the cache goes to a folder of its own."""
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    environment["PYTHONPYCACHEPREFIX"] = str(directory / "pycache")
    return environment


def run_process(
    command: list[str], stdout: Path, environment: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Run a process to its end; return its wall seconds, CPU seconds and peak RSS in MB."""
    errors = stdout.with_suffix(".err")
    with stdout.open("wb") as out, errors.open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=environment)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[3:5]} failed ({process.returncode}): {errors.read_text()}")
    return seconds, usage.ru_utime + usage.ru_stime, round(usage.ru_maxrss / 1024, 1)


CEILING = """
import csv, gc, json, sys
gc.disable()  # as the command does while it loads: the fastest bare read
with open(sys.argv[1], encoding="utf-8") as file:
    json.load(file)
with open(sys.argv[2], encoding="utf-8", newline="") as file:
    sum(1 for _ in csv.reader(file))
"""


def bench_command(args: argparse.Namespace) -> dict[str, Any]:
    """Time the whole `m365pbx match` process against reading its input, alternating."""
    pbx_users, teams_users = generate(args.users, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-matching-") as folder:
        directory = Path(folder)
        pbx_file, teams_file = write_inputs(pbx_users, teams_users, directory)
        del pbx_users, teams_users
        rules = [f"--rule={rule}" for rule in (args.rule or DEFAULT_RULES)]
        command = [sys.executable, "-c", "from m365pbx.cli import main; main()", "match",
                   f"--teams={teams_file}", f"--pbx={pbx_file}", *rules,
                   f"--phone-region={args.phone_region}", "--format=json"]
        ceiling = [sys.executable, "-c", CEILING, str(teams_file), str(pbx_file)]
        report = directory / "report.json"
        runs: dict[str, list[float]] = {"command": [], "ceiling": []}
        cpu: dict[str, list[float]] = {"command": [], "ceiling": []}
        peaks: dict[str, list[float]] = {"command": [], "ceiling": []}
        environment = installed_environment(directory)
        for argv in (ceiling, command):  # writes the bytecode; not timed
            run_process(argv, directory / "warm-up.out", environment)
        for _ in range(args.repeat):
            for name, argv in (("ceiling", ceiling), ("command", command)):
                seconds, cpu_seconds, peak = run_process(
                    argv, report if name == "command" else directory / "ceiling.out",
                    environment)
                runs[name].append(seconds)
                cpu[name].append(cpu_seconds)
                peaks[name].append(peak)
        summary = json.loads(report.read_text(encoding="utf-8"))["summary"]
        input_mb = (pbx_file.stat().st_size + teams_file.stat().st_size) / 1e6
    command_s, ceiling_s = statistics.median(runs["command"]), statistics.median(runs["ceiling"])
    command_cpu, ceiling_cpu = statistics.median(cpu["command"]), statistics.median(cpu["ceiling"])
    return {
        "bench": "matching_command",
        "command": "m365pbx match --format json " + " ".join(rules),
        "pbx_users": summary["pbx_users"],
        "teams_users": summary["teams_users"],
        "input_mb": round(input_mb, 1),
        "seconds": round(command_s, 3),
        "seconds_runs": [round(value, 3) for value in runs["command"]],
        "peak_rss_mb": max(peaks["command"]),
        "ceiling": "python, collector off: json.load(teams file) + csv.reader(pbx file), same run",
        "ceiling_seconds": round(ceiling_s, 3),
        "ceiling_peak_rss_mb": max(peaks["ceiling"]),
        "ratio_to_ceiling": round(command_s / ceiling_s, 2),
        "cpu_seconds": round(command_cpu, 3),
        "ceiling_cpu_seconds": round(ceiling_cpu, 3),
        "cpu_ratio_to_ceiling": round(command_cpu / ceiling_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "goal_seconds": 2.0,
        "goal_rss_mb": 300,
        "matched": summary["matched"],
        "unmatched_pbx": summary["unmatched_pbx"],
        "unmatched_teams": summary["unmatched_teams"],
        "ambiguous": summary["ambiguous"],
        "python": sys.version.split()[0],
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    """Generate the data, run one match and print the JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000, help="users on each side")
    parser.add_argument("--seed", type=int, default=365)
    parser.add_argument("--rule", action="append", help="PBXFIELD=MSFIELD (repeatable)")
    parser.add_argument("--phone-region", default="DE")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--in-process", action="store_true", help="time match_users alone")
    args = parser.parse_args(argv)
    if not args.in_process:
        print(json.dumps(bench_command(args)))
        return 0
    rules = tuple(parse_rule(text) for text in (args.rule or DEFAULT_RULES))
    pbx_users, teams_users = generate(args.users, args.seed)
    options = MatchOptions(rules=rules, phone_region=args.phone_region)
    before = peak_rss_mb()
    started = time.perf_counter()
    cpu_started = time.process_time()
    result = match_users(pbx_users, teams_users, options)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    summary = result.summary()
    line = {
        "bench": "matching",
        "pbx_users": len(pbx_users),
        "teams_users": len(teams_users),
        "rules": [str(rule) for rule in rules],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_match_mb": before,
        "memory_measure": "resource.getrusage(RUSAGE_SELF).ru_maxrss, whole process",
        "matched": summary["matched"],
        "unmatched": len(result.unmatched),
        "unmatched_pbx": summary["unmatched_pbx"],
        "unmatched_teams": summary["unmatched_teams"],
        "ambiguous": summary["ambiguous"],
        "python": sys.version.split()[0],
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
