"""Environment overrides: M365PBX_SECTION__KEY wins over the file; the file is found by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m365pbx.config import ConfigError, load_config
from tests.config.conftest import Load, Problems, Write, valid


def test_nested_variables_win_over_the_file(load: Load) -> None:
    config = valid()
    config["listen"] = {"host": "0.0.0.0", "port": 8080}
    config["database"] = {"url": "sqlite+aiosqlite:///file.db"}
    settings = load(
        config,
        {"M365PBX_LISTEN__PORT": "9000", "M365PBX_DATABASE__URL": "sqlite+aiosqlite:///env.db"},
    )
    assert settings.listen.port == 9000
    assert settings.listen.host == "0.0.0.0"  # the rest of the section stays
    assert settings.database.url == "sqlite+aiosqlite:///env.db"


def test_variable_names_are_case_insensitive(load: Load) -> None:
    assert load(valid(), {"m365pbx_logging__level": "debug"}).logging.level == "DEBUG"


def test_a_whole_section_as_json(load: Load) -> None:
    settings = load(valid(), {"M365PBX_LISTEN": json.dumps({"port": 7000})})
    assert settings.listen.port == 7000


def test_list_items_are_amended_by_index(load: Load) -> None:
    settings = load(valid(), {"M365PBX_TENANTS__0__DIRECTORY__FULL_SYNC_INTERVAL": "15m"})
    assert settings.tenants[0].directory.full_sync_interval.total_seconds() == 900
    assert settings.tenants[0].credentials[0].name == "graph"


def test_index_beyond_the_file_is_an_error(problems: Problems) -> None:
    problem = problems(valid(), {"M365PBX_TENANTS__2__NAME": "x"}).problems[0]
    assert problem.source == "environment variable M365PBX_TENANTS__2__NAME"
    assert "there is no item 2 to override" in problem.message


def test_bad_value_from_the_environment_names_the_variable(problems: Problems) -> None:
    problem = problems(valid(), {"M365PBX_LISTEN__PORT": "http"}).problems[0]
    assert str(problem).startswith(
        "environment variable M365PBX_LISTEN__PORT: listen.port: input should be a valid integer"
    )


def test_bad_json_in_a_section_variable(problems: Problems) -> None:
    problem = problems(valid(), {"M365PBX_LISTEN": "{port: 1"}).problems[0]
    assert problem.source == "environment variable M365PBX_LISTEN"
    assert "M365PBX_LISTEN__KEY=value" in problem.message


def test_unknown_variable_is_a_warning_with_a_suggestion(load: Load) -> None:
    settings = load(valid(), {"M365PBX_DATABASE_URL": "x", "M365PBX_SECRET_KEY": "k"})
    assert settings.warnings == [
        "environment variable M365PBX_DATABASE_URL is not a setting and is ignored "
        "(did you mean M365PBX_DATABASE__URL?)"
    ]


def test_no_file_means_defaults_plus_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_config(None, environ={"M365PBX_LISTEN__PORT": "81"})
    assert settings.source_file is None
    assert settings.listen.port == 81
    assert settings.database.url == "sqlite+aiosqlite:///var/m365pbx.db"
    assert settings.public_url is None and settings.webhook_url is None
    assert settings.tenants == [] and settings.pbx_connections == []


def test_m365pbx_yaml_in_the_working_directory_is_found(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write({"listen": {"port": 82}})
    monkeypatch.chdir(tmp_path)
    settings = load_config(None, environ={})
    assert settings.listen.port == 82
    assert settings.source_file == Path("m365pbx.yaml")


def test_m365pbx_config_names_the_file(
    write: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write({"listen": {"port": 83}})
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert load_config(None, environ={"M365PBX_CONFIG": str(path)}).listen.port == 83
    with pytest.raises(ConfigError, match="file not found"):
        load_config(None, environ={"M365PBX_CONFIG": str(other / "missing.yaml")})


def test_a_plain_http_public_url_on_loopback_loads_with_a_warning(load: Load) -> None:
    config = valid()
    config["public_url"] = "http://127.0.0.1:8080"
    settings = load(config)
    assert any(w.startswith("public_url: http://127.0.0.1:8080/ is plain http")
               and "https://" in w for w in settings.warnings)
    config["public_url"] = "https://m365pbx.example.com"
    assert load(config).warnings == []
