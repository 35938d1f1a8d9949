"""Generating large tenants quickly and deterministically.

Same seed, same tenant: ids, names, addresses, phones and licences come from one seeded
random generator. Names repeat (as in a real 50,000-person company), user principal
names never do: a clash gets a number (`anna.mueller2@`). Phone numbers use the mixed
formats people type into Entra (E.164, spaced, national with trunk prefix, with an
extension), so number normalisation in m365pbx meets the real variety.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from m365sim.directory.names import (
    ASCII_FOLD,
    E3_SKU_ID,
    EXCHANGE_PLAN_ID,
    FIRST_NAMES,
    JOB_TITLES,
    LAST_NAMES,
    OFFICES,
)
from m365sim.model import TEAMS_PLAN_ID, Group, User
from m365sim.scenario import teams_plan

if TYPE_CHECKING:
    from m365sim.model import Tenant
    from m365sim.simulator import Simulator

MAX_USERS = 1_000_000
_ASSIGNED = "2024-01-01T00:00:00Z"
_EXCHANGE_PLAN = {"assignedDateTime": _ASSIGNED, "capabilityStatus": "Enabled",
                  "service": "exchange", "servicePlanId": EXCHANGE_PLAN_ID}


@lru_cache(maxsize=4096)
def ascii_name(name: str) -> str:
    """A name as it appears in a mail address: lower case, no accents, no spaces."""
    folded = "".join(ASCII_FOLD.get(ch, ch) for ch in name.lower())
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if ch.isascii() and (ch.isalnum() or ch == "-"))


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _business_phone(rng: random.Random, office: tuple[str, str, str, str, tuple[str, ...]],
                    index: int) -> str:
    _, country, area, trunk, _ = office
    block = f"{5550 + index // 10_000}"
    extension = f"{index % 10_000:04d}"
    style = rng.randrange(4)
    if style == 0:
        return f"+{country}{area.lstrip('0')}{block}{extension}"
    if style == 1:
        return f"+{country} {area.lstrip('0')} {block} {extension}"
    if style == 2:
        return f"{trunk}{area.lstrip('0') if trunk else area} {block}-{extension}"
    return f"+{country} ({trunk}){area.lstrip('0')} {block}-{extension}"


def _mobile(rng: random.Random, office: tuple[str, str, str, str, tuple[str, ...]]) -> str:
    _, country, _, trunk, prefixes = office
    prefix = rng.choice(prefixes)
    number = f"{rng.randrange(10_000_000):07d}"
    if rng.random() < 0.5:
        return f"+{country} {prefix} {number}"
    return f"{trunk}{prefix} {number}"


def _licences(teams: bool, licensed: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if teams:
        return ([{"skuId": E3_SKU_ID, "disabledPlans": []}],
                [teams_plan(), dict(_EXCHANGE_PLAN)])
    if licensed:
        # Licence with Teams switched off: the plan is listed as disabled and not assigned.
        return [{"skuId": E3_SKU_ID, "disabledPlans": [TEAMS_PLAN_ID]}], [dict(_EXCHANGE_PLAN)]
    return [], []


def generate_users(
    sim: Simulator,
    tenant: Tenant,
    *,
    users: int,
    seed: int = 0,
    teams_share: float = 0.95,
    disabled_share: float = 0.01,
    domain: str | None = None,
    mfa_share: float = 0.0,
    hybrid_share: float = 0.5,
    mobile_share: float = 0.6,
    password: str | None = None,
    groups: int = 0,
    presence: Any = "signed-in",
) -> list[User]:
    """Add `users` generated users to `tenant` (deterministic for a seed); return them."""
    if isinstance(users, bool) or not isinstance(users, int) or not 0 <= users <= MAX_USERS:
        raise ValueError(f"users must be a whole number from 0 to {MAX_USERS}")
    for name, share in (("teams_share", teams_share), ("disabled_share", disabled_share),
                        ("mfa_share", mfa_share), ("hybrid_share", hybrid_share),
                        ("mobile_share", mobile_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    domain = domain or tenant.default_domain
    if domain.casefold() not in {d.casefold() for d in tenant.domains}:
        raise ValueError(f"{domain!r} is not a domain of tenant {tenant.display_name!r}")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    made_groups = _groups(tenant, rng, groups)
    start = len(tenant.users)
    taken = {address.partition(":")[2].partition("@")[0].casefold()
             for user in tenant.users.values() for address in user.proxy_addresses}
    taken |= {user.user_principal_name.partition("@")[0].casefold()
              for user in tenant.users.values()}
    aliases = _Addresses(taken)
    created: list[User] = []
    for index in range(start, start + users):
        user = _user(tenant, rng, index, domain, aliases, teams_share, disabled_share,
                     mfa_share, hybrid_share, mobile_share, password)
        if made_groups:
            group = made_groups[index % len(made_groups)]
            user.member_of.add(group.id)
            group.members.add(user.id)
        tenant.add_user(user)
        created.append(user)
    for user in created:
        sim.presence.load_user(tenant, user, presence)
        sim.outlook.load_user(tenant, user, None, None)
    return created


def _groups(tenant: Tenant, rng: random.Random, count: int) -> list[Group]:
    made = []
    for number in range(count):
        office = OFFICES[number % len(OFFICES)][0]
        name = f"{office} Team" + (f" {number // len(OFFICES) + 1}"
                                   if number >= len(OFFICES) else "")
        group = Group(id=_guid(rng), display_name=name)
        tenant.groups[group.id] = group
        made.append(group)
    return made


class _Addresses:
    """Local parts already used in the tenant, with the next number to try per name."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken
        self.next_number: dict[str, int] = {}

    def claim(self, base: str, limit: int = 64) -> str:
        """`base`, or `base` with the lowest free number, shortened to `limit` characters."""
        key = base.casefold()
        number = self.next_number.get(key, 1)
        candidate = base[:limit] if number == 1 else f"{base[:limit - len(str(number))]}{number}"
        while candidate.casefold() in self.taken:
            number += 1
            candidate = f"{base[:limit - len(str(number))]}{number}"
        self.next_number[key] = number
        self.taken.add(candidate.casefold())
        return candidate


def _user(tenant: Tenant, rng: random.Random, index: int, domain: str, aliases: _Addresses,
          teams_share: float, disabled_share: float, mfa_share: float, hybrid_share: float,
          mobile_share: float, password: str | None) -> User:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    user_id = _guid(rng)
    while user_id in tenant.users:
        user_id = _guid(rng)
    # Addresses are unique across the tenant (UPN, every proxy address, sAMAccountName).
    local = aliases.claim(f"{ascii_name(first)}.{ascii_name(last)}")
    upn = f"{local}@{domain}"
    office = OFFICES[rng.randrange(len(OFFICES))]
    teams = rng.random() < teams_share
    licences, plans = _licences(teams, licensed=rng.random() < 0.5)
    alias = aliases.claim(f"{ascii_name(first)[:1]}{ascii_name(last)}", limit=20)
    proxies = [f"SMTP:{upn}", f"smtp:{alias}@{domain}"]
    if teams:
        proxies.append(f"SIP:{upn}")
    hybrid = rng.random() < hybrid_share
    return User(
        id=user_id, user_principal_name=upn, display_name=f"{first} {last}",
        password=password, mfa_required=rng.random() < mfa_share,
        account_enabled=rng.random() >= disabled_share, mail=upn, mail_nickname=local,
        given_name=first, surname=last, job_title=rng.choice(JOB_TITLES),
        office_location=office[0], preferred_language=None,
        business_phones=[_business_phone(rng, office, index)],
        mobile_phone=_mobile(rng, office) if rng.random() < mobile_share else None,
        proxy_addresses=proxies,
        on_premises_sam_account_name=alias if hybrid else None,
        on_premises_user_principal_name=upn if hybrid else None,
        on_premises_distinguished_name=(
            f"CN={first} {last},OU=Users,OU={ascii_name(office[0])},"
            + ",".join(f"DC={part}" for part in domain.split(".")) if hybrid else None),
        assigned_plans=plans, assigned_licenses=licences,
    )
