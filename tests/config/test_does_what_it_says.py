"""Keys that were accepted and then ignored: now they act as documented, or are refused."""

from __future__ import annotations

from tests.config.conftest import Load, Problems, valid


def test_kind_asterisk_is_refused_at_its_line_until_the_adapter_exists(
    problems: Problems,
) -> None:
    config = valid()
    config["pbx_connections"].append({
        "name": "ami", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "pbx", "username": "m365pbx", "secret": "s"}})
    error = problems(config)
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.path == "pbx_connections[1].kind"
    assert problem.source is not None and problem.source.endswith("m365pbx.yaml")
    assert problem.line is not None
    text = str(problem)
    assert "not available yet" in text and "'sip' or 'api'" in text


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
