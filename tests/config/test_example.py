"""The shipped example loads as it is, and the models keep what users wrote."""

from __future__ import annotations

from pathlib import Path

import m365pbx
from m365pbx.config import (
    SignInMethod,
    SipConnection,
    count,
    describe,
    example_config_text,
    load_config,
)
from m365pbx.core.presence import Activity, Availability
from tests.config.conftest import Load, Problems, valid

EXAMPLE = Path(m365pbx.__file__).parent / "config.example.yaml"


def test_example_loads_cleanly_without_any_environment() -> None:
    settings = load_config(EXAMPLE, environ={})
    assert str(count(settings)) == (
        "2 tenants, 3 credentials, 2 service accounts, 2 PBX connections"
    )
    assert [connection.kind for connection in settings.pbx_connections] == ["sip", "api"]
    assert settings.tenants[0].mapping is not None
    assert settings.pbx_connections[0].mapping is not None
    assert settings.tenants[0].service_accounts[1].sign_in is SignInMethod.PASSWORD


def test_example_text_is_the_shipped_file() -> None:
    assert example_config_text() == EXAMPLE.read_text(encoding="utf-8")


def test_describe_shows_objects_but_no_secrets() -> None:
    settings = load_config(EXAMPLE, environ={})
    text = "\n".join(describe(settings))
    assert "tenant contoso (8d1f7a52-3c6e-4b0f-9a2d-5e7c1b9f4a30)" in text
    assert "connection office-sip: sip for tenant contoso, udp sip.contoso.local:5060" in text
    assert "placeholder" not in text.lower()


def test_sip_settings_defaults_and_parsed_server(load: Load) -> None:
    connection = load(valid()).pbx_connections[0]
    assert isinstance(connection, SipConnection)
    assert (connection.settings.host, connection.settings.port) == ("sip.contoso.local", 5060)
    assert connection.settings.uri_template == "sip:{extension}@{domain}"
    assert connection.push_line_state_to_teams is True
    assert connection.matching.rules == ["cn=displayName"]
    assert connection.matching.casefold and connection.matching.unicode_normalize


def test_presence_fallbacks_are_read_case_insensitively(load: Load, problems: Problems) -> None:
    config = valid()
    config["presence"] = {"unknown_availability": "offline", "unknown_activity": "offwork"}
    fallback = load(config).presence.fallback()
    assert (fallback.availability, fallback.activity) == (Availability.OFFLINE, Activity.OFF_WORK)
    config["presence"] = {"unknown_availability": "Bussy"}
    assert "expected a Teams availability: Available" in str(problems(config))


def test_values_are_normalised(load: Load) -> None:
    config = valid()
    config["tenants"][0]["tenant_id"] = "8D1F7A52-3C6E-4B0F-9A2D-5E7C1B9F4A30"
    config["pbx_connections"][0]["matching"] = {"phone_region": "de"}
    settings = load(config)
    assert settings.tenants[0].tenant_id == "8d1f7a52-3c6e-4b0f-9a2d-5e7c1b9f4a30"
    assert settings.pbx_connections[0].matching.phone_region == "DE"


def test_sip_server_with_ipv6_and_port(load: Load) -> None:
    config = valid()
    config["pbx_connections"][0]["settings"]["server"] = "[2001:db8::5]:5070"
    connection = load(config).pbx_connections[0]
    assert isinstance(connection, SipConnection)
    assert (connection.settings.host, connection.settings.port) == ("2001:db8::5", 5070)


def test_empty_public_url_from_the_environment_means_polling(load: Load) -> None:
    config = valid()
    config["public_url"] = "https://m365pbx.example.com"
    assert load(config, {"M365PBX_PUBLIC_URL": ""}).webhook_url is None
