"""SIP addresses and accounts per person, and options from the configuration."""

from __future__ import annotations

import pytest

from m365pbx.config.connections import SipSettings
from m365pbx.pbx.base import PbxUser
from m365pbx.pbx.sip.addressing import (
    Addressing,
    GatewayAccount,
    PersonalAccounts,
    UnaddressableUser,
    identity_for,
)
from m365pbx.pbx.sip.options import SipOptions

BOB = PbxUser(
    "bob",
    {
        "extension": "201",
        "cn": "Bob Builder",
        "sip": "bob@pbx.example.com",
        "sip_password": 'b0b:p"w',
    },
)


def test_address_from_template_and_field() -> None:
    assert Addressing("pbx.example.com").address(BOB) == "sip:201@pbx.example.com"
    custom = Addressing("pbx.example.com", "sip:{key}+{extension}@{domain};user=phone")
    assert custom.address(BOB) == "sip:bob+201@pbx.example.com;user=phone"
    by_field = Addressing("ignored.example.com", uri_field="sip")
    assert by_field.address(BOB) == "sip:bob@pbx.example.com"
    assert by_field.address(PbxUser("x", {"sip": "sips:x@y"})) == "sips:x@y"
    escaped = Addressing("d.example").address(PbxUser("z", {"extension": "a b<c>"}))
    assert escaped == "sip:a%20b%3Cc%3E@d.example"
    assert Addressing("::1").address(PbxUser("v6", {"extension": "7"})) == "sip:7@::1"


@pytest.mark.parametrize(
    ("addressing", "user"),
    [
        (Addressing("d"), PbxUser("nobody", {})),
        (Addressing("d"), PbxUser("empty", {"extension": ""})),
        (Addressing("d", uri_field="sip"), PbxUser("nosip", {"extension": "1"})),
        (Addressing("d", uri_field="sip"), PbxUser("bad", {"sip": "not an address"})),
        (Addressing("d", "sip:{mobile}@{domain}"), BOB),
    ],
)
def test_users_without_an_address_are_refused_clearly(
    addressing: Addressing, user: PbxUser
) -> None:
    with pytest.raises(UnaddressableUser, match=user.key):
        addressing.address(user)


def test_gateway_and_personal_identities() -> None:
    addressing = Addressing("pbx.example.com")
    address = addressing.address(BOB)
    none = identity_for(None, addressing, BOB, address)
    assert (none.sender, none.credentials) == (address, None)
    gateway = identity_for(GatewayAccount("m365pbx", "gw-secret"), addressing, BOB, address)
    assert gateway.sender == "sip:m365pbx@pbx.example.com"
    assert gateway.credentials is not None and gateway.credentials.username == "m365pbx"
    assert "gw-secret" not in repr(GatewayAccount("m365pbx", "gw-secret"))
    anonymous_gateway = identity_for(GatewayAccount("m365pbx"), addressing, BOB, address)
    assert anonymous_gateway.credentials is None
    personal = identity_for(PersonalAccounts(), addressing, BOB, address)
    assert personal.sender == address
    assert personal.credentials is not None
    assert (personal.credentials.username, personal.credentials.password) == ("201", 'b0b:p"w')
    assert "b0b" not in repr(personal.credentials)
    with pytest.raises(UnaddressableUser, match="sip_password"):
        identity_for(PersonalAccounts(), addressing, PbxUser("x", {"extension": "1"}), address)


def test_options_from_settings() -> None:
    settings = SipSettings.model_validate(
        {
            "server": "presence.example.com:5070",
            "transport": "tcp",
            "domain": "example.com",
            "uri_template": "sip:{extension}@{domain}",
            "username": "gw",
            "password": "pw",
        }
    )
    options = SipOptions.from_settings(settings, keepalive_interval=5.0)
    assert options.server == ("presence.example.com", 5070)
    assert options.transport == "tcp"
    assert options.addressing == Addressing("example.com", "sip:{extension}@{domain}")
    assert options.accounts == GatewayAccount("gw", "pw")
    assert options.keepalive_interval == 5.0
    plain = SipOptions.from_settings(SipSettings.model_validate({"server": "h", "domain": "d"}))
    assert plain.server == ("h", 5060) and plain.accounts is None and plain.transport == "udp"


def test_personal_accounts_address_field_watches_and_expiries_from_settings() -> None:
    settings = SipSettings.model_validate(
        {
            "server": "h",
            "domain": "pbx.example.com",
            "uri_field": "sip",
            "personal_accounts": {"username_template": "{extension}",
                                  "password_field": "sip_password"},
            "watch_presence": True,
            "watch_line_state": False,
            "publish_expires": "5m",
            "subscribe_expires": "1h",
        }
    )
    options = SipOptions.from_settings(settings)
    address = options.addressing.address(BOB)
    assert address == "sip:bob@pbx.example.com"
    identity = identity_for(options.accounts, options.addressing, BOB, address)
    assert identity.credentials is not None
    assert (identity.credentials.username, identity.credentials.password) == ("201", 'b0b:p"w')
    assert options.watch_presence and not options.watch_line_state
    assert (options.publish_expires, options.subscribe_expires) == (300, 3600)


def test_a_template_may_use_the_key_and_any_pbx_field() -> None:
    settings = SipSettings.model_validate(
        {"server": "h", "domain": "pbx.example.com", "uri_template": "sip:{key}@{domain}"})
    assert SipOptions.from_settings(settings).addressing.address(BOB) == (
        "sip:bob@pbx.example.com")


@pytest.mark.parametrize(("settings", "expected"), [
    ({"uri_template": "sip:{domain}"}, "needs a PBX user field"),
    ({"uri_template": "sip:{extension@{domain}"}, "unbalanced"),
    ({"uri_template": "sip:{0}@{domain}"}, "not a field name"),
    ({"username": "gw", "personal_accounts": {}}, "not both"),
    ({"personal_accounts": {"password_field": "sip password"}}, "field name"),
    ({"publish_expires": "10s"}, "between 1 minute and 1 day"),
])
def test_broken_sip_settings_are_refused_in_words(settings: dict[str, object],
                                                  expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        SipSettings.model_validate({"server": "h", "domain": "d", **settings})
