"""match_users: the semantics an administrator relies on, one behaviour per test."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from m365pbx.core.matching import (
    Ambiguous,
    Match,
    MatchOptions,
    MatchResult,
    PbxUser,
    Rule,
    Unmatched,
    match_users,
)
from m365pbx.errors import UserInputError

TEAMS_PLAN = {"service": "TeamspaceAPI", "capabilityStatus": "Enabled"}
EXCHANGE_PLAN = {"service": "exchange", "capabilityStatus": "Enabled"}


def ms(user_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": user_id, **fields}


def pbx(h323: str, **fields: str) -> PbxUser:
    return PbxUser(h323, fields)


def rules(*texts: str) -> tuple[Rule, ...]:
    return tuple(Rule(*text.split("=")) for text in texts)


def run(
    pbx_users: Sequence[PbxUser], teams_users: Sequence[dict[str, Any]], *rule_texts: str, **kw: Any
) -> MatchResult:
    chosen = rules(*rule_texts) if rule_texts else rules("cn=displayName")
    options = MatchOptions(rules=chosen, **kw)
    return match_users(pbx_users, teams_users, options)


def pairs(result: MatchResult) -> dict[str, tuple[str, str]]:
    return {item.pbx: (item.teams, item.rule) for item in result.matched}


def unmatched(result: MatchResult, side: str = "pbx") -> dict[str, str]:
    return {item.key: item.reason for item in result.unmatched if item.side == side}


def ambiguous(result: MatchResult) -> dict[str, Ambiguous]:
    return {item.pbx: item for item in result.ambiguous}


# --- default rule, case and Unicode --------------------------------------------------------


def test_default_rule_is_long_name_to_display_name() -> None:
    result = match_users([pbx("anna", cn="Anna Schmidt")], [ms("a1", displayName="Anna Schmidt")])
    assert result.matched == (Match("anna", "a1", "cn=displayName"),)


def test_case_accents_width_and_whitespace_are_ignored_by_default() -> None:
    teams = [ms("z", displayName="Zoë Meier"), ms("j", displayName="José García")]
    people = [pbx("zoe", cn="  ZOE   meier "), pbx("jose", cn="ＪＯＳＥ Garcia")]
    assert pairs(run(people, teams)) == {
        "zoe": ("z", "cn=displayName"),
        "jose": ("j", "cn=displayName"),
    }


def test_no_casefold_compares_case() -> None:
    teams = [ms("a1", displayName="Anna Schmidt")]
    result = run([pbx("anna", cn="anna schmidt")], teams, casefold=False)
    assert unmatched(result) == {
        "anna": "no Microsoft user has displayName = 'anna schmidt' (rule cn=displayName)"
    }
    assert pairs(run([pbx("anna", cn="Anna Schmidt")], teams, casefold=False)) == {
        "anna": ("a1", "cn=displayName")
    }


def test_no_unicode_normalize_keeps_accents_and_spaces_but_still_casefolds() -> None:
    teams = [ms("z", displayName="Zoë Meier")]
    result = run([pbx("zoe", cn="Zoe Meier")], teams, unicode_normalize=False)
    assert unmatched(result) == {
        "zoe": "no Microsoft user has displayName = 'Zoe Meier' (rule cn=displayName)"
    }
    assert "zoe" in unmatched(run([pbx("zoe", cn="Zoë  Meier")], teams, unicode_normalize=False))
    assert pairs(run([pbx("zoe", cn="ZOË MEIER")], teams, unicode_normalize=False))


# --- rule order and ambiguity ----------------------------------------------------------------


def test_first_rule_with_exactly_one_candidate_decides() -> None:
    teams = [ms("by-name", displayName="Anna Schmidt"), ms("by-mail", mail="anna@contoso.de")]
    person = [pbx("anna", cn="Anna Schmidt", email="anna@contoso.de")]
    assert pairs(run(person, teams, "cn=displayName", "email=mail")) == {
        "anna": ("by-name", "cn=displayName")
    }
    assert pairs(run(person, teams, "email=mail", "cn=displayName")) == {
        "anna": ("by-mail", "email=mail")
    }


def test_a_later_rule_decides_when_earlier_rules_find_nobody() -> None:
    teams = [ms("a1", displayName="Anna Schmidt-Berg", mail="anna@contoso.de")]
    result = run(
        [pbx("anna", cn="Anna Schmidt", email="anna@contoso.de")],
        teams,
        "cn=displayName",
        "email=mail",
    )
    assert pairs(result) == {"anna": ("a1", "email=mail")}


def test_several_candidates_are_reported_never_picked() -> None:
    teams = [ms("t2", displayName="Thomas Müller"), ms("t1", displayName="Thomas Müller")]
    result = run([pbx("tm", cn="Thomas Müller")], teams)
    assert result.matched == ()
    assert result.ambiguous == (
        Ambiguous(
            "tm",
            ("t1", "t2"),
            "2 Microsoft users have displayName = 'Thomas Müller' (rule cn=displayName): t1, t2",
        ),
    )


def test_later_rule_narrows_ambiguity_to_one() -> None:
    teams = [
        ms("t1", displayName="Thomas Müller", mail="thomas.mueller@contoso.de"),
        ms("t2", displayName="Thomas Müller", mail="t.mueller@contoso.de"),
    ]
    person = [pbx("tm", cn="Thomas Müller", email="t.mueller@contoso.de")]
    assert pairs(run(person, teams, "cn=displayName", "email=mail")) == {"tm": ("t2", "email=mail")}


def test_later_rule_is_restricted_to_the_earlier_candidates() -> None:
    teams = [
        ms("t1", displayName="Thomas Müller"),
        ms("t2", displayName="Thomas Müller"),
        ms("other", displayName="Tom M.", mail="tm@contoso.de"),
    ]
    result = run(
        [pbx("tm", cn="Thomas Müller", email="tm@contoso.de")],
        teams,
        "cn=displayName",
        "email=mail",
    )
    assert result.matched == ()
    entry = ambiguous(result)["tm"]
    assert entry.candidates == ("t1", "t2")
    assert entry.reason == (
        "2 Microsoft users have displayName = 'Thomas Müller' (rule cn=displayName): t1, t2; "
        "none of them has mail = 'tm@contoso.de' (rule email=mail)"
    )


def test_later_rule_can_narrow_without_deciding() -> None:
    teams = [
        ms("t1", displayName="Thomas Müller", department="IT", mail="x@contoso.de"),
        ms("t2", displayName="Thomas Müller", mail="x@contoso.de"),
        ms("t3", displayName="Thomas Müller", mail="y@contoso.de"),
    ]
    result = run(
        [pbx("tm", cn="Thomas Müller", email="x@contoso.de")], teams, "cn=displayName", "email=mail"
    )
    entry = ambiguous(result)["tm"]
    assert entry.candidates == ("t1", "t2")
    assert "2 of them have mail = 'x@contoso.de' (rule email=mail): t1, t2" in entry.reason


def test_one_microsoft_user_claimed_by_two_pbx_users_goes_to_neither() -> None:
    teams = [ms("m1", displayName="Maria López", mail="maria@contoso.de")]
    people = [pbx("mlopez", cn="Maria Lopez"), pbx("mlopez-ho", email="maria@contoso.de")]
    result = run(people, teams, "cn=displayName", "email=mail")
    assert result.matched == ()
    reason = (
        "Microsoft user m1 is matched by 2 PBX users: mlopez (rule cn=displayName), "
        "mlopez-ho (rule email=mail)"
    )
    assert result.ambiguous == (
        Ambiguous("mlopez", ("m1",), reason),
        Ambiguous("mlopez-ho", ("m1",), reason),
    )
    assert unmatched(result, "teams") == {
        "m1": "matched by 2 PBX users, so by none: mlopez, mlopez-ho"
    }


# --- fields: missing values, warnings, proxy addresses, domains, SIP --------------------------


def test_missing_fields_are_absent_not_errors() -> None:
    teams = [ms("a1", displayName="Anna"), ms("b1", displayName=None, proxyAddresses=None)]
    result = run(
        [pbx("anna", cn="Anna"), pbx("bob")], teams, "cn=displayName", "email=proxyAddresses"
    )
    assert pairs(result) == {"anna": ("a1", "cn=displayName")}
    assert unmatched(result)["bob"] == (
        "PBX user has no cn (rule cn=displayName);"
        " PBX user has no email (rule email=proxyAddresses)"
    )


def test_a_field_no_user_has_is_one_warning_per_side() -> None:
    teams = [ms("a1", displayName="Anna"), ms("b1", displayName="Bob")]
    people = [pbx("anna", cn="Anna"), pbx("bob", cn="Bob")]
    result = run(people, teams, "cn=displayName", "email=proxyAddresses", "sip=proxyAddresses")
    assert result.warnings == (
        "no PBX user has email (rule email=proxyAddresses)",
        "no PBX user has sip (rule sip=proxyAddresses)",
        "no Microsoft user has proxyAddresses (rule email=proxyAddresses, sip=proxyAddresses);"
        " Graph returns proxyAddresses only when $select names it",
    )
    assert len(result.matched) == 2


def test_proxy_address_prefixes_are_dropped_and_only_smtp_entries_are_mail() -> None:
    teams = [
        ms("s1", proxyAddresses=["SMTP:skoch@contoso.de", "smtp:Sabine.Koch@contoso.de"]),
        ms("x1", proxyAddresses=["SIP:xaver@contoso.de", "X500:/o=ExchangeLabs/cn=xaver"]),
    ]
    people = [pbx("skoch", email="sabine.koch@contoso.de"), pbx("xaver", email="xaver@contoso.de")]
    result = run(people, teams, "email=proxyAddresses")
    assert pairs(result) == {"skoch": ("s1", "email=proxyAddresses")}
    assert "xaver" in unmatched(result)


def test_sip_uri_matches_sip_proxy_addresses_without_the_scheme() -> None:
    teams = [ms("w1", proxyAddresses=["SMTP:wolf@contoso.de", "SIP:sebastian.wolf@contoso.de"])]
    person = [pbx("swolf", sip="sip:Sebastian.Wolf@contoso.de")]
    assert pairs(run(person, teams, "sip=sipProxyAddresses")) == {
        "swolf": ("w1", "sip=sipProxyAddresses")
    }


def test_sip_scheme_on_the_pbx_side_is_dropped_for_any_field() -> None:
    teams = [ms("a1", mail="anna@contoso.de")]
    assert pairs(run([pbx("anna", sip="SIP:anna@contoso.de")], teams, "sip=mail"))


def test_strip_domain_applies_to_both_sides() -> None:
    teams = [
        ms("a1", userPrincipalName="anna.schmidt@contoso.onmicrosoft.com"),
        ms("b1", mailNickname="bob"),
    ]
    people = [pbx("anna", email="Anna.Schmidt@contoso.de"), pbx("bob", email="bob@contoso.de")]
    without = run(people, teams, "email=userPrincipalName", "email=mailNickname")
    assert pairs(without) == {}
    stripped = run(
        people, teams, "email=userPrincipalName", "email=mailNickname", strip_domain=True
    )
    assert pairs(stripped) == {
        "anna": ("a1", "email=userPrincipalName"),
        "bob": ("b1", "email=mailNickname"),
    }


def test_h323_and_custom_fields_can_be_rule_fields() -> None:
    teams = [ms("j1", onPremisesSamAccountName="JWeiss"), ms("k1", mailNickname="kk")]
    people = [pbx("jweiss"), pbx("kkrueger", nickname="kk")]
    result = run(people, teams, "h323=onPremisesSamAccountName", "nickname=mailNickname")
    assert pairs(result) == {
        "jweiss": ("j1", "h323=onPremisesSamAccountName"),
        "kkrueger": ("k1", "nickname=mailNickname"),
    }


# --- phone numbers ---------------------------------------------------------------------------


def test_phone_numbers_in_different_formats_match_with_a_default_region() -> None:
    teams = [ms("a1", businessPhones=["+49 (30) 1234-567"])]
    person = [pbx("anna", extension="030 1234567")]
    assert pairs(run(person, teams, "extension=businessPhones", phone_region="DE")) == {
        "anna": ("a1", "extension=businessPhones")
    }
    # Without a region a national number cannot be parsed and keeps only its digits.
    assert pairs(run(person, teams, "extension=businessPhones")) == {}


def test_unparseable_numbers_fall_back_to_digits_only() -> None:
    teams = [ms("a1", mobilePhone="0171/555-0199")]
    assert pairs(run([pbx("anna", extension="0171 5550199")], teams, "extension=mobilePhone"))


def test_short_national_numbers_match_exactly() -> None:
    teams = [ms("lu", businessPhones=["+352 4796 1"]), ms("other", businessPhones=["+352 4796 2"])]
    result = run(
        [pbx("bank", extension="47961")], teams, "extension=businessPhones", phone_region="LU"
    )
    assert pairs(result) == {"bank": ("lu", "extension=businessPhones")}


def test_extensions_of_one_main_number_are_different_numbers() -> None:
    teams = [
        ms("a1", businessPhones=["+49 30 1234567 ext. 12"]),
        ms("b1", businessPhones=["+49 30 1234567 ext. 13"]),
    ]
    result = run([pbx("anna", extension="+49301234567;ext=12")], teams, "extension=businessPhones")
    assert pairs(result) == {"anna": ("a1", "extension=businessPhones")}


def test_unknown_phone_region_is_bad_input() -> None:
    with pytest.raises(UserInputError, match="unknown phone region 'XX'"):
        run([], [], phone_region="XX")


# --- pins and exclusions ---------------------------------------------------------------------


def test_pin_overrides_rules_and_takes_the_user_out_of_the_pool() -> None:
    teams = [ms("a1", displayName="Anna"), ms("a2", displayName="Anna B.")]
    people = [pbx("anna", cn="Anna"), pbx("annab", cn="Anna B.")]
    result = run(people, teams, pins={"anna": "a2"})
    assert pairs(result) == {"anna": ("a2", "pin")}
    assert unmatched(result) == {
        "annab": "no Microsoft user in scope has displayName = 'Anna B.' (rule cn=displayName);"
        " left out: a2 (pinned to PBX user anna)"
    }
    assert unmatched(result, "teams") == {"a1": "no PBX user matched"}


def test_pin_may_name_the_user_principal_name() -> None:
    teams = [ms("a1", userPrincipalName="Anna@contoso.de")]
    assert pairs(run([pbx("anna")], teams, pins={"anna": "anna@CONTOSO.de"})) == {
        "anna": ("a1", "pin")
    }


def test_pins_naming_unknown_users_are_warnings_and_rules_still_decide() -> None:
    teams = [ms("a1", displayName="Anna")]
    result = run([pbx("anna", cn="Anna")], teams, pins={"anna": "nobody", "ghost": "a1"})
    assert pairs(result) == {"anna": ("a1", "cn=displayName")}
    assert result.warnings == (
        "pin anna=nobody: no Microsoft user has id or userPrincipalName 'nobody';"
        " the rules decide for this PBX user",
        "pin ghost=a1: no PBX user has h323 'ghost'",
    )


def test_two_pbx_users_pinned_to_one_microsoft_user_are_ambiguous() -> None:
    result = run([pbx("a"), pbx("b")], [ms("m1")], pins={"a": "m1", "b": "m1"})
    assert result.matched == ()
    assert [entry.candidates for entry in result.ambiguous] == [("m1",), ("m1",)]
    assert "a (rule pin), b (rule pin)" in result.ambiguous[0].reason


def test_pin_to_a_left_out_user_is_reported() -> None:
    result = run([pbx("anna")], [ms("a1", accountEnabled=False)], pins={"anna": "a1"})
    assert unmatched(result) == {
        "anna": "pinned to Microsoft user a1, which is left out: account disabled"
    }


def test_exclusions_remove_users_of_either_side() -> None:
    teams = [ms("a1", displayName="Anna"), ms("b1", displayName="Bob")]
    people = [pbx("anna", cn="Anna"), pbx("bob", cn="Bob"), pbx("fax", cn="Fax")]
    result = run(people, teams, exclude=frozenset({"fax", "b1", "nobody"}))
    assert pairs(result) == {"anna": ("a1", "cn=displayName")}
    assert unmatched(result) == {
        "fax": "excluded",
        "bob": "no Microsoft user in scope has displayName = 'Bob' (rule cn=displayName);"
        " left out: b1 (excluded)",
    }
    assert unmatched(result, "teams") == {"b1": "excluded"}
    assert result.warnings == (
        "exclusion 'nobody' names no PBX user (h323) and no Microsoft user"
        " (id or userPrincipalName)",
    )


# --- scope: disabled accounts, licences, groups ----------------------------------------------


def test_disabled_accounts_are_left_out_with_a_reason() -> None:
    teams = [ms("p1", displayName="Peter Schulz", accountEnabled=False)]
    result = run([pbx("pschulz", cn="Peter Schulz")], teams)
    assert unmatched(result) == {
        "pschulz": "no Microsoft user in scope has displayName = 'Peter Schulz'"
        " (rule cn=displayName); left out: p1 (account disabled)"
    }
    assert unmatched(result, "teams") == {
        "p1": "account disabled; PBX user 'pschulz' would match it by rule cn=displayName"
    }


def test_licence_filter_uses_assigned_plans_when_present() -> None:
    teams = [
        ms("licensed", displayName="A", assignedPlans=[EXCHANGE_PLAN, TEAMS_PLAN]),
        ms("unlicensed", displayName="B", assignedPlans=[EXCHANGE_PLAN]),
        ms(
            "suspended",
            displayName="C",
            assignedPlans=[dict(TEAMS_PLAN, capabilityStatus="Suspended")],
        ),
        ms("unknown", displayName="D"),
    ]
    people = [pbx("a", cn="A"), pbx("b", cn="B"), pbx("c", cn="C"), pbx("d", cn="D")]
    result = run(people, teams)
    assert set(pairs(result)) == {"a", "d"}
    assert unmatched(result, "teams")["unlicensed"].startswith("no Teams licence")
    assert unmatched(result, "teams")["suspended"].startswith("no Teams licence")
    assert set(pairs(run(people, teams, require_teams_licence=False))) == {"a", "b", "c", "d"}


def test_left_out_users_nobody_wanted_are_only_counted() -> None:
    teams = [
        ms("mailbox", displayName="Service Desk", accountEnabled=False),
        ms("room", displayName="Raum Spree", assignedPlans=[EXCHANGE_PLAN]),
    ]
    result = run([pbx("anna", cn="Anna")], teams)
    assert unmatched(result, "teams") == {}
    assert result.summary()["left_out"] == {"account disabled": 1, "no Teams licence": 1}


def test_group_filter_from_member_of_or_a_membership_mapping() -> None:
    teams = [
        ms("a1", displayName="A", memberOf=["sales"]),
        ms("b1", displayName="B", memberOf=[{"id": "it", "displayName": "IT"}]),
        ms("c1", displayName="C"),
    ]
    people = [pbx("a", cn="A"), pbx("b", cn="B"), pbx("c", cn="C")]
    only_sales = run(people, teams, allowed_groups=frozenset({"sales"}))
    assert set(pairs(only_sales)) == {"a"}
    assert "not in an allowed group" in unmatched(only_sales)["b"]
    by_mapping = run(
        people, teams, allowed_groups=frozenset({"it"}), group_memberships={"c1": ["it"], "a1": []}
    )
    assert set(pairs(by_mapping)) == {"c"}


# --- the teams side, determinism, bad input, progress ----------------------------------------


def test_microsoft_users_nobody_matched_are_reported_with_side_teams() -> None:
    teams = [ms("a1", displayName="Anna"), ms("n1", displayName="Lena Vogel")]
    result = run([pbx("anna", cn="Anna")], teams)
    assert [item for item in result.unmatched if item.side == "teams"] == [
        Unmatched("teams", "n1", "no PBX user matched")
    ]


def test_result_does_not_depend_on_input_order() -> None:
    teams = [ms(f"id{n}", displayName=f"Name {n % 7}", mail=f"u{n}@x.de") for n in range(40)]
    people = [pbx(f"h{n}", cn=f"Name {n % 9}", email=f"u{n}@x.de") for n in range(45)]
    expected = run(people, teams, "cn=displayName", "email=mail")
    shuffler = random.Random(4)
    for _ in range(5):
        shuffler.shuffle(teams)
        shuffler.shuffle(people)
        assert run(people, teams, "cn=displayName", "email=mail") == expected


def test_duplicate_keys_and_missing_ids_are_bad_input() -> None:
    with pytest.raises(UserInputError, match="two PBX users have this h323"):
        run([pbx("a"), pbx("a")], [])
    with pytest.raises(UserInputError, match="has no 'id'"):
        run([], [{"displayName": "No Id"}])
    with pytest.raises(UserInputError, match="two Microsoft users have this id"):
        run([], [ms("x"), ms("x")])


def test_progress_reports_up_to_the_total() -> None:
    calls: list[tuple[int, int]] = []
    teams = [ms(f"id{n}", displayName=f"N{n}") for n in range(2500)]
    people = [pbx(f"h{n}", cn=f"N{n}") for n in range(2500)]
    match_users(people, teams, MatchOptions(), lambda done, total: calls.append((done, total)))
    assert calls[-1] == (5000, 5000)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_json_document_has_the_three_parts() -> None:
    result = run([pbx("anna", cn="Anna"), pbx("x", cn="X")], [ms("a1", displayName="Anna")])
    document = result.as_dict()
    assert document["matched"] == [{"pbx": "anna", "teams": "a1", "rule": "cn=displayName"}]
    assert document["unmatched"] == [
        {
            "side": "pbx",
            "key": "x",
            "reason": "no Microsoft user has displayName = 'X' (rule cn=displayName)",
        }
    ]
    assert document["ambiguous"] == []
    assert document["summary"] == {
        "pbx_users": 2,
        "teams_users": 1,
        "matched": 1,
        "unmatched_pbx": 1,
        "unmatched_teams": 0,
        "ambiguous": 0,
        "left_out": {},
    }
