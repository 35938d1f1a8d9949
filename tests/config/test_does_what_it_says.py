"""Keys that were accepted and then ignored: now they act as documented, or are refused."""

from __future__ import annotations

from tests.config.conftest import Load, Problems, valid


def test_kind_asterisk_is_accepted_with_its_defaults(load: Load) -> None:
    config = valid()
    config["pbx_connections"].append({
        "name": "ami", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "pbx", "username": "m365pbx", "secret": "s"}})
    settings = load(config)
    asterisk = settings.pbx_connections[-1].settings
    assert (asterisk.port, asterisk.line_device, asterisk.custom_device) == (
        5038, "PJSIP/{extension}", "Custom:{extension}-teams")


def test_a_line_device_we_write_ourselves_is_refused_at_its_line(problems: Problems) -> None:
    # Loop guard: reading the line from our own Custom: device would echo Teams back.
    config = valid()
    config["pbx_connections"].append({
        "name": "ami", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "pbx", "username": "m365pbx", "secret": "s",
                     "line_device": "Custom:{extension}-teams"}})
    error = problems(config)
    assert [p.path for p in error.problems] == ["pbx_connections[1].settings.line_device"]
    assert error.problems[0].line is not None
    assert "never from a Custom: device" in str(error.problems[0])


def test_webhook_mode_without_a_public_url_is_refused_at_the_mode(problems: Problems) -> None:
    config = valid()
    config["teams_to_pbx"] = {"mode": "webhook"}
    error = problems(config)
    assert [p.path for p in error.problems] == ["teams_to_pbx.mode"]
    assert error.problems[0].line is not None
    assert "public_url" in str(error.problems[0])


def test_webhook_mode_refuses_a_tenant_without_service_accounts(problems: Problems) -> None:
    config = valid()
    config["public_url"] = "https://m365pbx.example.com"
    config["teams_to_pbx"] = {"mode": "webhook"}
    del config["tenants"][0]["service_accounts"]
    error = problems(config)
    assert [p.path for p in error.problems] == ["tenants[0].service_accounts"]
    assert error.problems[0].line is not None
    assert "delegated" in str(error.problems[0])


def test_webhook_mode_set_from_the_environment_names_the_variable(problems: Problems) -> None:
    error = problems(valid(), {"M365PBX_TEAMS_TO_PBX__MODE": "webhook"})
    assert [p.path for p in error.problems] == ["teams_to_pbx.mode"]
    assert error.problems[0].source == "environment variable M365PBX_TEAMS_TO_PBX__MODE"


def test_webhook_mode_with_a_public_url_and_accounts_loads(load: Load) -> None:
    config = valid()
    config["public_url"] = "https://m365pbx.example.com"
    config["teams_to_pbx"] = {"mode": "webhook"}
    assert load(config).teams_to_pbx.mode == "webhook"
