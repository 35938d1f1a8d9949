"""Rule syntax, field names and text normalisation."""

from __future__ import annotations

import pytest

from m365pbx.core.matching import (
    DEFAULT_RULES,
    MICROSOFT_FIELDS,
    Rule,
    fold_unicode,
    parse_rule,
    read_microsoft_field,
    strip_domain,
    text_normalizer,
)
from m365pbx.core.matching.normalize import strip_sip_scheme
from m365pbx.errors import UserInputError


def test_default_rule_is_innovaphones() -> None:
    assert [str(rule) for rule in DEFAULT_RULES] == ["cn=displayName"]


def test_parse_rule_accepts_any_case_and_spaces() -> None:
    assert parse_rule(" CN = displayname ") == Rule("cn", "displayName")
    assert parse_rule("email=PROXYADDRESSES") == Rule("email", "proxyAddresses")


def test_unknown_microsoft_field_lists_the_valid_names() -> None:
    with pytest.raises(UserInputError) as caught:
        parse_rule("cn=displayname2")
    message = caught.value.describe()
    assert message.startswith("rule 'cn=displayname2': unknown Microsoft field 'displayname2'")
    for name in MICROSOFT_FIELDS:
        assert name in message


def test_pbx_field_is_checked_against_the_files_columns() -> None:
    columns = ("h323", "cn", "email", "department")
    assert parse_rule("Department=displayName", columns) == Rule("department", "displayName")
    with pytest.raises(
        UserInputError,
        match=r"unknown PBX field 'sip'; valid names \(the PBX "
        r"file's columns\): h323, cn, email, department",
    ):
        parse_rule("sip=sipProxyAddresses", columns)


def test_without_columns_any_pbx_name_is_a_custom_field() -> None:
    assert parse_rule("costcentre=mailNickname") == Rule("costcentre", "mailNickname")


@pytest.mark.parametrize("text", ["cn", "=displayName", "cn=", "cn displayName"])
def test_malformed_rules_explain_the_syntax(text: str) -> None:
    with pytest.raises(UserInputError, match="PBXFIELD=MSFIELD"):
        parse_rule(text)


def test_rule_objects_validate_microsoft_fields_too() -> None:
    with pytest.raises(UserInputError, match="unknown Microsoft field 'mails'"):
        Rule("email", "mails")


def test_fold_unicode_handles_accents_width_strokes_and_whitespace() -> None:
    assert fold_unicode(" Zoë\u00a0 Meier\t") == "Zoe Meier"
    assert fold_unicode("ＡＢＣ") == "ABC"
    assert fold_unicode("Łukasz Søren") == "Lukasz Soren"
    assert fold_unicode("हिन्दी") == "हिन्दी"  # vowel signs are not accents


def test_strip_domain_and_sip_scheme() -> None:
    assert strip_domain("user@domain.tld") == "user"
    assert strip_domain("no-domain") == "no-domain"
    assert strip_sip_scheme("sip:anna@x.de") == "anna@x.de"
    assert strip_sip_scheme("SIPS:anna@x.de") == "anna@x.de"
    assert strip_sip_scheme("anna@x.de") == "anna@x.de"


def test_text_normalizer_switches() -> None:
    everything = text_normalizer(casefold=True, unicode_normalize=True, domain=True)
    assert everything("Straße@Contoso.de") == "strasse"
    nothing = text_normalizer(casefold=False, unicode_normalize=False, domain=False)
    assert nothing(" Zoë ") == " Zoë "


def test_microsoft_field_readers() -> None:
    user = {
        "displayName": "Anna",
        "businessPhones": ["+49 30 1", "", None],
        "mobilePhone": None,
        "proxyAddresses": ["SMTP:a@x.de", "smtp:b@x.de", "SIP:a@x.de", "X500:/o=x", "smtp:"],
    }
    assert read_microsoft_field(user, "displayName") == ["Anna"]
    assert read_microsoft_field(user, "businessPhones") == ["+49 30 1"]
    assert read_microsoft_field(user, "mobilePhone") == []
    assert read_microsoft_field(user, "proxyAddresses") == ["a@x.de", "b@x.de"]
    assert read_microsoft_field(user, "sipProxyAddresses") == ["a@x.de"]
    assert read_microsoft_field({}, "mail") == []
