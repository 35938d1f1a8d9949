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
