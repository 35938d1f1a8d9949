"""The matcher's fast paths give what the plain definitions give.

Folding in one memoised call equals fold_unicode then casefold; the phone filing without a
regular expression equals the one with it; reading a field for all users at once reads what
the per-user readers read; eligibility for all users in one loop equals it user by user; and
a match whose text rules are looked up for all PBX users at once, walked without sentences
first, equals the match that walks every user with its sentences, looking up one by one.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.core.matching import (
    MatchOptions,
    PbxUser,
    Rule,
    engine,
    fold_unicode,
    match_users,
    strip_domain,
    text_normalizer,
)
from m365pbx.core.matching.eligibility import left_out_reason, left_out_reasons
from m365pbx.core.matching.fields import MICROSOFT_FIELD_READERS, field_values
from m365pbx.core.matching.lookups import (
    _PLAIN_PHONE,
    _SEPARATORS,
    SAFE_NATIONAL_DIGITS,
    SUFFIX_DIGITS,
    FieldLookup,
    plain_suffix,
)
from m365pbx.core.matching.walk import Decided, RuleLookup, RuleWalker, Undecided
from tests.core.test_matching_properties import directories

LATIN = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x24F), max_size=20)
# Letters with combining accents after them (NFD), Vietnamese letters, the letters with a
# stroke that NFKC can merge with an accent (ø + U+0301 is ǿ).
NFD = st.text(
    st.one_of(
        st.sampled_from("aeiouAEIOUnNcCsSzZ øØłŁđĐħĦı'-"),
        st.characters(min_codepoint=0x300, max_codepoint=0x36F),
        st.characters(min_codepoint=0x1E00, max_codepoint=0x1EFF),
        st.characters(min_codepoint=0xA0, max_codepoint=0x24F),
    ),
    max_size=12,
)
ANY = st.text(max_size=20)


@given(st.lists(st.one_of(LATIN, NFD, ANY), max_size=8))
def test_folding_equals_the_steps(values: list[str]) -> None:
    folded = text_normalizer(casefold=True, unicode_normalize=True, domain=False)
    kept = text_normalizer(casefold=False, unicode_normalize=True, domain=False)
    domain = text_normalizer(casefold=True, unicode_normalize=True, domain=True)
    for value in values + values:  # the second time from memory
        assert folded(value) == fold_unicode(value).casefold()
        assert kept(value) == fold_unicode(value)
        assert domain(value) == strip_domain(fold_unicode(value).casefold())


def test_folding_of_names_as_pbx_exports_write_them() -> None:
    folded = text_normalizer(casefold=True, unicode_normalize=True, domain=False)
    for name in ("Jürgen Weiß", "Zoë Dvořák", "Søren Ångström", "Łukasz Wiśniewski",
                 "Nguyễn Thị Minh Khai", "ǿ", "ø\u0301"):
        for form in ("NFC", "NFD"):
            written = unicodedata.normalize(form, name)
            assert folded(written) == fold_unicode(written).casefold(), written


def test_the_other_combinations() -> None:
    assert text_normalizer(casefold=True, unicode_normalize=False, domain=False)("ÄB") == "äb"
    assert text_normalizer(casefold=False, unicode_normalize=False, domain=True)("a@b") == "a"
    assert text_normalizer(casefold=False, unicode_normalize=False, domain=False)(" A ") == " A "


def _plain_suffix_by_pattern(value: str) -> str | None:
    if not value.isascii() or not _PLAIN_PHONE.fullmatch(value):
        return None
    digits = value.translate(_SEPARATORS)
    return digits[-SUFFIX_DIGITS:] if len(digits) >= SAFE_NATIONAL_DIGITS else None


@given(st.text(alphabet="+0123456789 ()./-x\u0660\u00a0", max_size=24))
def test_plain_suffix_equals_the_pattern(value: str) -> None:
    assert plain_suffix(value) == _plain_suffix_by_pattern(value)


ODD_USERS: list[dict[str, object]] = [
    {"displayName": "Anna", "mail": "  ", "businessPhones": "+49 30 1", "mobilePhone": 5,
     "proxyAddresses": ["SMTP:a@x.de", "smtp:A@X.DE", "Smtp:b@x.de", "smtp:  ", "SIP:a@x.de",
                        "x500:/o=x", 7, "smtp:"]},
    {"displayName": None, "businessPhones": ["+49 30 2", "", None, "  ", "030 3"],
     "proxyAddresses": "SMTP:c@x.de", "sipProxyAddresses": ["sip:d@x.de"]},
    {},
    {"userPrincipalName": "e@x.de", "onPremisesSamAccountName": "e", "businessPhones": None,
     "proxyAddresses": ["sip:E@X.DE", "SIP:f@x.de"]},
]


def test_field_values_reads_what_the_readers_read() -> None:
    for name, read in MICROSOFT_FIELD_READERS.items():
        expected = [(position, value) for position, user in enumerate(ODD_USERS)
                    for value in read(user)]
        assert list(field_values(ODD_USERS, name)) == expected, name


def _one_by_one(rule: Rule, lookup: FieldLookup, pbx: object) -> RuleLookup:
    return RuleLookup(rule, lookup)


def _always_with_sentences(walker: RuleWalker, user: PbxUser, number: int) -> Decided | Undecided:
    return walker._walk(user, number)


PHONE_RULES = (Rule("extension", "businessPhones"),)
PHONES = ["030 1234567", "+49 30 1234567", "+49 (30) 1234567", "1234567", "030 12345"]


@settings(max_examples=300, deadline=None)
@given(directories(), st.lists(st.sampled_from(PHONES), min_size=24, max_size=24))
def test_text_rules_for_all_users_at_once_change_no_outcome(
    world: tuple[list[PbxUser], list[dict[str, Any]], MatchOptions], phones: list[str]
) -> None:
    people, teams, options = world
    # A phone rule between or after the text rules: it is looked up user by user.
    people = [PbxUser(user.key, {**user.fields, "extension": phones[at]})
              for at, user in enumerate(people)]
    teams = [{**user, "businessPhones": [phones[12 + at % 12]]} for at, user in enumerate(teams)]
    for rules in (options.rules, options.rules + PHONE_RULES, PHONE_RULES + options.rules):
        with_rules = MatchOptions(rules=rules, pins=options.pins, exclude=options.exclude,
                                  phone_region="DE")
        fast = match_users(people, teams, with_rules)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine, "_rule_lookup", _one_by_one)
            patch.setattr(RuleWalker, "walk", _always_with_sentences)
            plain = match_users(people, teams, with_rules)
        assert fast == plain


ELIGIBILITY_USERS: list[dict[str, object]] = [
    {}, {"accountEnabled": False}, {"accountEnabled": True, "assignedPlans": []},
    {"assignedPlans": [{"service": "exchange", "capabilityStatus": "Enabled"},
                       {"service": "TeamspaceAPI", "capabilityStatus": "Enabled"}]},
    {"assignedPlans": [{"service": "TeamspaceAPI", "capabilityStatus": "Suspended"}, "x"]},
    {"assignedPlans": "TeamspaceAPI", "memberOf": [{"id": "g1"}]},
    {"accountEnabled": False, "assignedPlans": [], "memberOf": ["g2"]},
]


@pytest.mark.parametrize("options", [
    MatchOptions(), MatchOptions(require_teams_licence=False),
    MatchOptions(allowed_groups=frozenset({"g1"})),
])
def test_eligibility_of_all_users_at_once(options: MatchOptions) -> None:
    expected = [left_out_reason(user, options) for user in ELIGIBILITY_USERS]
    assert left_out_reasons(ELIGIBILITY_USERS, options) == expected


def test_eligibility_reasons_of_the_odd_users() -> None:
    assert left_out_reasons(ELIGIBILITY_USERS, MatchOptions()) == [
        None, "account disabled", "no Teams licence", None, "no Teams licence", None,
        "account disabled",
    ]
