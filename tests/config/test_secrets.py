"""Secrets: inline or by reference, and never shown — not even a wrong one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from m365pbx.config import MASK, Settings
from tests.config.conftest import SECRET, Load, Problems, valid


def secret_of(settings: Settings) -> str:
    secret = settings.tenants[0].credentials[0].client_secret
    assert secret is not None
    return secret.get_secret_value()


def test_secret_from_environment_variable(load: Load) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"env": "GRAPH_SECRET"}
    assert secret_of(load(config, {"GRAPH_SECRET": SECRET})) == SECRET


def test_secret_from_file_without_its_final_newline(load: Load, tmp_path: Path) -> None:
    secret_file = tmp_path / "graph.secret"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"file": str(secret_file)}
    assert secret_of(load(config)) == SECRET


def test_missing_environment_variable_names_the_key_and_the_variable(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"env": "GRAPH_SECRET"}
    problem = problems(config).problems[0]
    assert problem.path == "tenants[0].credentials[0].client_secret"
    assert problem.message.startswith(
        "refers to environment variable GRAPH_SECRET, which is not set"
    )
    assert problem.line == 7  # where client_secret is written


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "absent.secret", "which does not exist"),
        (lambda d: d, "which is a directory"),
    ],
    ids=["missing", "directory"],
)
def test_unreadable_secret_file(
    problems: Problems, tmp_path: Path, make: object, expected: str
) -> None:
    target = make(tmp_path)  # type: ignore[operator]
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"file": str(target)}
    problem = problems(config).problems[0]
    assert problem.path == "tenants[0].credentials[0].client_secret"
    assert expected in problem.message


def test_empty_secret_is_refused(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"env": "EMPTY"}
    assert "which is empty" in str(problems(config, {"EMPTY": ""}))


def test_malformed_reference_says_what_is_accepted(problems: Problems) -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_secret"] = {"vault": "x"}
    assert "{env: VARIABLE} or {file: PATH}" in str(problems(config))


@pytest.mark.parametrize(
    "place",
    [
        # a secret pasted into a field that is not secret
        ("tenants", 0, "credentials", 0, "client_id"),
        # a secret of the wrong type under a secret key
        ("pbx_connections", 0, "settings", "password"),
        # a secret given where it is not allowed
        ("tenants", 0, "service_accounts", 0, "password"),
        # a secret under a misspelt key
        ("tenants", 0, "credentials", 0, "client_secrte"),
    ],
)
def test_a_secret_in_a_broken_field_never_appears(
    problems: Problems, place: tuple[str | int, ...]
) -> None:
    config = valid()
    node = config
    for part in place[:-1]:
        node = node[part]
    wrong_type = place[-1] == "password" and place[0] == "pbx_connections"
    node[place[-1]] = [SECRET] if wrong_type else SECRET
    if wrong_type:
        node["username"] = "m365pbx"
    error = problems(config)  # the fixture asserts SECRET is not in the message
    assert any(problem.path.endswith(str(place[-1])) for problem in error.problems)
    assert all(SECRET not in str(problem) for problem in error.problems)


def test_redacted_masks_every_secret(load: Load) -> None:
    config = valid()
    config["pbx_connections"][0]["settings"].update(username="u", password=SECRET + "-sip")
    config["database"] = {"url": "postgresql+asyncpg://m365pbx:db-Pa55@db.example.com/m365pbx"}
    data = load(config).redacted()
    printed = yaml.safe_dump(data)
    assert SECRET not in printed
    assert "db-Pa55" not in printed
    assert data["tenants"][0]["credentials"][0]["client_secret"] == MASK
    assert data["pbx_connections"][0]["settings"]["password"] == MASK
    assert data["database"]["url"] == f"postgresql+asyncpg://m365pbx:{MASK}@db.example.com/m365pbx"


def test_settings_repr_does_not_show_secrets(load: Load) -> None:
    settings = load(valid())
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_database_url_from_a_reference_is_masked_when_shown(load: Load) -> None:
    url = "postgresql+asyncpg://m365pbx:db-Pa55@db.example.com/m365pbx"
    config = valid()
    config["database"] = {"url": {"env": "DATABASE_URL"}}
    settings = load(config, {"DATABASE_URL": url})
    assert settings.database.url == url
    assert "db-Pa55" not in yaml.safe_dump(settings.redacted())


def test_validation_errors_of_direct_construction_hide_inputs() -> None:
    config = valid()
    config["tenants"][0]["credentials"][0]["client_id"] = SECRET
    with pytest.raises(ValidationError) as caught:
        Settings(**config)
    assert SECRET not in str(caught.value)
