"""A broken file gives every problem at once, each with file, line, key path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from m365pbx.config import ConfigError, load_config
from m365pbx.errors import UserInputError
from tests.config.conftest import GUID_B, Problems, Write, valid


def only(error: ConfigError) -> str:
    assert len(error.problems) == 1, [str(p) for p in error.problems]
    return str(error.problems[0])


def test_yaml_syntax_error_names_line_and_column(problems: Problems, tmp_path: Path) -> None:
    error = problems(
        """
        listen:
          port: 8080
           host: 0.0.0.0
        """
    )
    name = tmp_path / "m365pbx.yaml"
    assert only(error) == f"{name}:3:8: YAML syntax error: mapping values are not allowed here"
    assert isinstance(error, UserInputError)


def test_unterminated_quote_points_at_where_it_started(problems: Problems) -> None:
    message = only(problems('tenants:\n  - name: "contoso\n'))
    assert "YAML syntax error" in message
    assert "at line 2" in message


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "---\n"])
def test_empty_file_is_an_error(problems: Problems, text: str) -> None:
    message = only(problems(text))
    assert "the file is empty" in message
    assert "m365pbx config example" in message


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "a list"), ("just words\n", "a single text value")]
)
def test_top_level_must_be_a_mapping(problems: Problems, text: str, kind: str) -> None:
    assert f"the top level must be a mapping of keys (key: value), not {kind}" in only(
        problems(text)
    )


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", environ={})


def test_python_tags_are_refused(problems: Problems) -> None:
    message = only(problems("x: !!python/object/apply:os.system ['true']\n"))
    assert ":1:4: YAML syntax error: could not determine a constructor" in message


def test_unknown_key_suggests_the_right_one_with_its_line(problems: Problems) -> None:
    error = problems(
        """
        listen:
          hots: 0.0.0.0
        """
    )
    problem = error.problems[0]
    assert (problem.line, problem.path) == (2, "listen.hots")
    assert "unknown key 'hots' (did you mean 'host'?); allowed here: host, port" in problem.message


def test_unknown_key_deep_in_a_connection_names_the_kind_specific_keys(
    problems: Problems,
) -> None:
    config = valid()
    config["pbx_connections"][0]["settings"]["servr"] = "x"
    message = only(problems(config))
    assert "pbx_connections[0].settings.servr: unknown key 'servr' (did you mean 'server'?)" in (
        message
    )
    assert "uri_template" in message  # the SIP settings, not the connection's own keys


def test_yaml_keys_are_taken_as_written(problems: Problems) -> None:
    # YAML 1.1 reads a bare `on` as true; we still report the key the user wrote.
    assert "on: unknown key 'on'" in only(problems("on: 1\n"))


def test_wrong_type_names_key_value_and_expectation(problems: Problems) -> None:
    problem = problems("listen:\n  port: eighty\n").problems[0]
    assert (problem.line, problem.path) == (2, "listen.port")
    assert "valid integer" in problem.message
    assert "got 'eighty'" in problem.message
    assert "(expected: TCP port" in problem.message


def test_bad_guid_names_the_key_and_the_value(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_id"] = "not-a-guid"
    message = only(problems(config))
    assert "tenants[0].credentials[0].client_id: expected a GUID" in message
    assert "got 'not-a-guid'" in message


def test_missing_required_key(problems: Problems) -> None:
    config = valid()
    del config["tenants"][0]["tenant_id"]
    problem = problems(config).problems[0]
    assert problem.path == "tenants[0].tenant_id"
    assert problem.message.startswith("required, but missing (expected: directory (tenant) id")
    assert problem.line == 2  # the tenant's first line, where the key belongs


def test_service_account_must_name_a_credential_of_its_tenant(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["service_accounts"][0]["credential"] = "grahp"
    message = only(problems(config))
    assert "tenants[0].service_accounts[0].credential: no credential named 'grahp' in tenant " in (
        message
    )
    assert "(did you mean 'graph'?)" in message


def test_connection_must_name_a_declared_tenant(problems: Problems) -> None:
    config = valid()
    config["pbx_connections"][0]["tenant"] = "contosso"
    message = only(problems(config))
    assert "pbx_connections[0].tenant: no tenant named 'contosso' (did you mean 'contoso'?)" in (
        message
    )


def test_connection_without_any_tenant(problems: Problems) -> None:
    config = valid()
    del config["tenants"]
    assert "names tenant 'contoso', but no tenants are declared" in only(problems(config))


def test_duplicate_names_point_at_the_first_declaration(problems: Problems) -> None:
    config = valid()
    second_tenant = valid()["tenants"][0]
    second_tenant["tenant_id"] = "fabrikam.onmicrosoft.com"
    second_tenant["credentials"][0]["client_id"] = GUID_B
    second_tenant["service_accounts"] = []
    config["tenants"].append(second_tenant)
    config["pbx_connections"].append(dict(config["pbx_connections"][0]))
    error = problems(config)
    messages = [str(problem) for problem in error.problems]
    assert any(
        "tenants[1].name: tenant name 'contoso' is already declared at tenants[0]" in m
        for m in messages
    )
    assert any(
        "tenants[1].credentials[0].name: credential name 'graph' is already declared at "
        "tenants[0].credentials[0]" in m
        for m in messages
    )
    assert any(
        "pbx_connections[1].name: connection name 'office' is already declared at "
        "pbx_connections[0]" in m
        for m in messages
    )
    assert len(messages) == 3


def test_the_same_tenant_or_service_account_twice(problems: Problems) -> None:
    config = valid()
    second = valid()["tenants"][0]
    second["name"] = "contoso-again"
    second["tenant_id"] = "CONTOSO.onmicrosoft.com"
    second["credentials"][0]["name"] = "graph2"
    second["service_accounts"][0].update(upn="Presence@contoso.com", credential="graph2")
    config["tenants"].append(second)
    messages = "\n".join(str(p) for p in problems(config).problems)
    assert "tenants[1].tenant_id: tenant id 'CONTOSO.onmicrosoft.com' is already declared" in (
        messages
    )
    assert "tenants[1].service_accounts[0].upn: service account 'Presence@contoso.com' is " in (
        messages
    )


def test_password_sign_in_needs_a_password(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["service_accounts"][0]["sign_in"] = "password"
    assert only(problems(config)).endswith(
        "tenants[0].service_accounts[0].password: required when sign_in is 'password'"
    )


def test_device_code_sign_in_refuses_a_password(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["service_accounts"][0]["password"] = "Hunter2-Is-Not-Safe!"
    message = only(problems(config))
    assert "password: not used when sign_in is 'device_code'" in message
    assert "Hunter2-Is-Not-Safe!" not in message


@pytest.mark.parametrize("both", [False, True], ids=["neither", "both"])
def test_credential_needs_exactly_one_of_secret_or_certificate(
    problems: Problems, both: bool
) -> None:
    config = valid()
    credential = config["tenants"][0]["credentials"][0]
    if both:
        credential["certificate_file"] = "graph.pem"
    else:
        del credential["client_secret"]
    assert only(problems(config)).endswith(
        "tenants[0].credentials[0]: give exactly one of client_secret or certificate_file"
    )


def test_unknown_permission_lists_the_valid_ones(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["permissions"] = ["presence.read", "presence.rwite"]
    message = only(problems(config))
    assert "permissions[1]: input should be 'presence.read', 'presence.write'" in message
    assert "got 'presence.rwite'" in message


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("sipp", "unknown kind 'sipp' (did you mean 'sip'?)"), (None, "required, but missing")],
)
def test_connection_kind(problems: Problems, kind: str | None, expected: str) -> None:
    config = valid()
    if kind is None:
        del config["pbx_connections"][0]["kind"]
    else:
        config["pbx_connections"][0]["kind"] = kind
    message = only(problems(config))
    assert f"pbx_connections[0].kind: {expected}" in message
    assert "expected one of: api, asterisk, sip" in message


def test_kind_specific_settings_are_required(problems: Problems) -> None:
    config = valid()
    config["pbx_connections"].append({"name": "lab", "kind": "sip", "tenant": "contoso",
                                      "settings": {"transport": "tcp"}})
    paths = sorted(problem.path for problem in problems(config).problems)
    assert paths == ["pbx_connections[1].settings.domain", "pbx_connections[1].settings.server"]


def test_every_problem_is_reported_at_once_in_file_order(problems: Problems) -> None:
    error = problems(
        """
        listen:
          port: -1
        logging:
          level: LOUD
        tenants:
          - name: Contoso Ltd
            tenant_id: common
            credentials: []
        """
    )
    assert [(p.line, p.path) for p in error.problems] == [
        (2, "listen.port"),
        (4, "logging.level"),
        (6, "tenants[0].name"),
        (7, "tenants[0].tenant_id"),
        (8, "tenants[0].credentials"),
    ]
    text = str(error)
    assert text.startswith("5 problems in ")
    assert "such as 'contoso-ltd'" in text
    assert "'common' does not name one tenant" in text


def test_duplicate_yaml_keys_are_an_error(problems: Problems) -> None:
    error = problems("listen:\n  port: 1\n  port: 2\n")
    assert only(error).endswith(
        ":3: listen.port: duplicate key 'port' (first at line 2); "
        "YAML would silently keep only the last one"
    )


def test_bad_mapping_override_is_reported_at_its_rule(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["mapping"] = {"teams_to_pbx": [{"availability": "Bsy", "pbx": "dnd"}]}
    problem = problems(config).problems[0]
    assert problem.path == "tenants[0].mapping.teams_to_pbx[0].availability"
    assert "unknown value 'Bsy' (did you mean 'Busy'?)" in problem.message
    assert problem.line is not None


def test_bad_matching_rule_names_the_rule(problems: Problems) -> None:
    config = valid()
    config["pbx_connections"][0]["matching"] = {"rules": ["cn=displayName", "mail=emial"]}
    message = only(problems(config))
    assert "pbx_connections[0].matching.rules[1]: unknown Microsoft field 'emial'" in message


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://m365pbx.example.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://localhost:9000", True),
        ("http://m365pbx.example.com", False),
        ("ftp://example.com", False),
    ],
)
def test_public_url_must_be_https_except_on_loopback(
    problems: Problems, write: Write, url: str, ok: bool
) -> None:
    if ok:
        settings = load_config(write({"public_url": url}), environ={})
        assert settings.webhook_url == url.rstrip("/") + "/graph/notifications"
    else:
        assert "public_url" in only(problems({"public_url": url}))


def test_database_url_password_is_hidden_in_errors(problems: Problems) -> None:
    message = only(problems({"database": {"url": "mysql://app:Pa55-w0rd@db/x"}}))
    assert "unsupported database 'mysql'" in message
    assert "Pa55-w0rd" not in message
