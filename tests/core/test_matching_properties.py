"""Invariants of match_users over generated directories full of collisions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.matching import MatchOptions, PbxUser, Rule, match_users, microsoft_properties
from m365pbx.core.matching.normalize import text_normalizer
from m365pbx.graph.users import only

# Few distinct values, so that names and addresses collide often.
NAMES = ["Anna Schmidt", "anna  schmidt", "Zoë Meier", "Zoe Meier", "Thomas Müller", "Bob"]
MAILS = ["a@x.de", "A@X.DE", "z@x.de", "t@x.de", "b@x.de"]
RULES = (Rule("cn", "displayName"), Rule("email", "proxyAddresses"), Rule("email", "mail"))

microsoft_user = st.fixed_dictionaries(
    {},
    optional={
        "displayName": st.sampled_from(NAMES),
        "mail": st.sampled_from(MAILS),
        "proxyAddresses": st.lists(
            st.builds(
                lambda prefix, mail: prefix + mail,
                st.sampled_from(["SMTP:", "smtp:", "SIP:"]),
                st.sampled_from(MAILS),
            ),
            max_size=3,
        ),
        "accountEnabled": st.booleans(),
    },
)
pbx_fields = st.fixed_dictionaries(
    {}, optional={"cn": st.sampled_from(NAMES), "email": st.sampled_from(MAILS)}
)


@st.composite
def directories(draw: st.DrawFn) -> tuple[list[PbxUser], list[dict[str, Any]], MatchOptions]:
    teams = [
        {"id": f"ms{number}", **fields}
        for number, fields in enumerate(draw(st.lists(microsoft_user, max_size=12)))
    ]
    people = [
        PbxUser(f"p{number}", fields)
        for number, fields in enumerate(draw(st.lists(pbx_fields, max_size=12)))
    ]
    keys = [user.key for user in people] + [user["id"] for user in teams]
    pins = {}
    if people and teams and draw(st.booleans()):
        pins[draw(st.sampled_from(people)).key] = draw(st.sampled_from(teams))["id"]
    options = MatchOptions(
        rules=tuple(draw(st.permutations(RULES))[: draw(st.integers(1, 3))]),
        pins=pins,
        exclude=frozenset(draw(st.lists(st.sampled_from(keys), max_size=2)) if keys else ()),
    )
    return people, teams, options


@settings(max_examples=300, deadline=None)
@given(directories(), st.randoms(use_true_random=False))
def test_result_is_independent_of_input_order(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions], shuffler: Any
) -> None:
    people, teams, options = world
    expected = match_users(people, teams, options)
    shuffler.shuffle(people)
    shuffler.shuffle(teams)
    assert match_users(people, teams, options) == expected


@settings(max_examples=300, deadline=None)
@given(directories())
def test_every_pbx_user_lands_in_exactly_one_part(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions],
) -> None:
    people, teams, options = world
    result = match_users(people, teams, options)
    placed = Counter(
        [item.pbx for item in result.matched]
        + [item.key for item in result.unmatched if item.side == "pbx"]
        + [item.pbx for item in result.ambiguous]
    )
    assert placed == Counter(user.key for user in people)


@settings(max_examples=300, deadline=None)
@given(directories())
def test_no_microsoft_user_is_matched_twice_or_reported_twice(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions],
) -> None:
    people, teams, options = world
    result = match_users(people, teams, options)
    matched = Counter(item.teams for item in result.matched)
    assert all(count == 1 for count in matched.values())
    reported = Counter(item.key for item in result.unmatched if item.side == "teams")
    assert not set(matched) & set(reported)
    assert all(count == 1 for count in reported.values())
    # Every enabled Microsoft user is accounted for: matched or reported.
    enabled = {user["id"] for user in teams if user.get("accountEnabled") is not False}
    assert enabled <= set(matched) | set(reported)


@settings(max_examples=300, deadline=None)
@given(directories())
def test_every_rule_match_is_justified_by_equal_values(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions],
) -> None:
    people, teams, options = world
    result = match_users(people, teams, options)
    normalize = text_normalizer(casefold=True, unicode_normalize=True, domain=False)
    by_h323 = {user.key: user for user in people}
    by_id = {user["id"]: user for user in teams}
    for item in result.matched:
        if item.rule == "pin":
            assert options.pins[item.pbx] == item.teams
            continue
        pbx_field, microsoft_field = item.rule.split("=")
        wanted = normalize(by_h323[item.pbx].value(pbx_field) or "")
        raw = by_id[item.teams].get(microsoft_field)
        values = raw if isinstance(raw, list) else [raw]
        found = {
            normalize(value.split(":", 1)[-1])
            for value in values
            if value and not value.startswith("SIP:")
        }
        assert wanted in found
        assert by_id[item.teams].get("accountEnabled") is not False


@settings(max_examples=200, deadline=None)
@given(directories())
def test_a_valid_pin_always_wins(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions],
) -> None:
    people, teams, options = world
    eligible = [
        user
        for user in teams
        if user.get("accountEnabled") is not False and user["id"] not in options.exclude
    ]
    candidates = [user for user in people if user.key not in options.exclude]
    if not eligible or not candidates:
        return
    pin = {candidates[0].key: eligible[0]["id"]}
    result = match_users(
        people, teams, MatchOptions(rules=options.rules, pins=pin, exclude=options.exclude)
    )
    assert (candidates[0].key, eligible[0]["id"], "pin") in {
        (item.pbx, item.teams, item.rule) for item in result.matched
    }


PLANS = [
    {"service": "TeamspaceAPI", "capabilityStatus": "Enabled", "servicePlanId": "57ff2da0"},
    {"service": "TeamspaceAPI", "capabilityStatus": "Suspended", "assignedDateTime": "2024"},
]


@settings(max_examples=300, deadline=None)
@given(directories(), st.lists(st.sampled_from([*PLANS, None]), min_size=12, max_size=12))
def test_only_the_properties_matching_reads_decide_the_result(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions],
    plans: list[dict[str, str] | None],
) -> None:
    people, teams, options = world
    for user, plan in zip(teams, plans, strict=False):
        user.update(givenName="Anna", mobilePhone="+49 170 1234567", jobTitle="Sales")
        if plan is not None:
            user["assignedPlans"] = [dict(plan)]
    # What the directory sync keeps of each Graph user (graph/users.py, `only`).
    kept = [only(user, microsoft_properties(options)) for user in teams]
    assert match_users(people, kept, options) == match_users(people, teams, options)
