"""Generated tenants: deterministic, realistic, unique addresses, and validated options."""

from __future__ import annotations

from collections import Counter

import pytest

from m365sim.directory.generate import ascii_name, generate_users
from m365sim.model import TEAMS_PLAN_ID, Tenant
from m365sim.scenario import ScenarioError, load_scenario
from m365sim.simulator import Simulator
from tests.sim.directory.schemas import validator


def make_tenant(sim: Simulator, tenant_id: str = "11111111-2222-4333-8444-555555555555"
                ) -> Tenant:
    load_scenario(sim, {"tenants": [{"id": tenant_id, "domains": ["fabrikam.example"]}]})
    found = sim.directory.find_tenant(tenant_id)
    assert found is not None
    return found


def test_same_seed_same_people_other_seed_other_people(sim: Simulator) -> None:
    first = generate_users(sim, make_tenant(sim, "11111111-0000-4000-8000-000000000001"),
                           users=300, seed=3)
    again = generate_users(sim, make_tenant(sim, "11111111-0000-4000-8000-000000000002"),
                           users=300, seed=3)
    other = generate_users(sim, make_tenant(sim, "11111111-0000-4000-8000-000000000003"),
                           users=300, seed=4)
    assert [(u.id, u.user_principal_name, u.business_phones) for u in first] == \
        [(u.id, u.user_principal_name, u.business_phones) for u in again]
    assert [u.id for u in first] != [u.id for u in other]


def test_addresses_are_unique_even_when_names_repeat(sim: Simulator) -> None:
    tenant = make_tenant(sim)
    people = generate_users(sim, tenant, users=3000, seed=1)
    names = Counter(u.display_name for u in people)
    assert names.most_common(1)[0][1] > 1  # realistic: namesakes exist
    upns = [u.user_principal_name.casefold() for u in people]
    assert len(set(upns)) == len(upns)
    proxies = [p.partition(":")[2].casefold() for u in people for p in u.proxy_addresses
               if p.lower().startswith("smtp:")]
    assert len(set(proxies)) == len(proxies)
    sams = [u.on_premises_sam_account_name for u in people if u.on_premises_sam_account_name]
    assert len(set(sams)) == len(sams) and all(len(s) <= 20 for s in sams)
    assert all(u.user_principal_name.isascii() for u in people)
    assert any(not u.display_name.isascii() for u in people)


def test_shares_licences_and_shape_follow_the_options(sim: Simulator) -> None:
    tenant = make_tenant(sim)
    people = generate_users(sim, tenant, users=2000, seed=9, teams_share=0.8,
                            disabled_share=0.1, groups=3, password="pw")
    teams = [u for u in people if any(p["servicePlanId"] == TEAMS_PLAN_ID and
                                      p["capabilityStatus"] == "Enabled"
                                      for p in u.assigned_plans)]
    assert 0.75 < len(teams) / len(people) < 0.85
    assert 0.07 < sum(not u.account_enabled for u in people) / len(people) < 0.13
    assert all(f"SIP:{u.user_principal_name}" in u.proxy_addresses for u in teams)
    assert len(tenant.groups) == 3 and sum(len(g.members) for g in tenant.groups.values()) == 2000
    assert all(u.password == "pw" for u in people)
    from m365sim.directory.user_spec import USER_SPEC

    schema = validator("types-strict/user.json")
    for user in people[:50]:
        schema.validate(USER_SPEC.to_json(user, tuple(USER_SPEC.render)))


def test_bad_options_are_refused(sim: Simulator) -> None:
    tenant = make_tenant(sim)
    with pytest.raises(ValueError):
        generate_users(sim, tenant, users=5, teams_share=1.5)
    with pytest.raises(ValueError):
        generate_users(sim, tenant, users=5, domain="contoso.com")
    with pytest.raises(ScenarioError):
        load_scenario(sim, {"tenants": [{"domains": ["x.example"],
                                         "generate": {"users": 3, "colour": "red"}}]})


def test_mail_names_drop_accents_the_way_admins_write_them() -> None:
    assert ascii_name("Müller") == "mueller"
    assert ascii_name("Groß") == "gross"
    assert ascii_name("Çağla") == "cagla"
    assert ascii_name("O'Brien") == "obrien"
    assert ascii_name("Van der Berg") == "vanderberg"
