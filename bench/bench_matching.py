"""Benchmark: match 50,000 PBX users against 50,000 Microsoft users; prints one JSON line.

Usage: .venv/bin/python bench/bench_matching.py [--users 50000] [--seed 365] [--rule A=B ...]

The data is generated from a seed: realistic German/European names with collisions, e-mail
aliases in proxyAddresses, phone numbers written differently on each side, disabled and
unlicensed accounts, PBX-only devices (rooms, fax) and Microsoft-only users.
`peak_rss_mb` is `resource.getrusage(RUSAGE_SELF).ru_maxrss` for the whole process (it
includes the generated data); `rss_before_match_mb` is the same figure just before matching.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import uuid
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
            proxies.append(f"smtp:{alias}")
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
        fields = {
            "cn": cn,
            "email": f"{alias}" if "smtp:" + alias in proxies and rng.random() < 0.5 else mail,
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
    args = parser.parse_args(argv)
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
