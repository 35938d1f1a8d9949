"""Which differences of the configuration file apply at once and which wait for a restart."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from m365pbx.config import load_config
from m365pbx.service.reconfigure import applies_at_once, differences
from tests.cli.test_config_apply import CONFIG, SECRET, write_config


def test_differences_name_paths_by_name_and_never_values() -> None:
    old = {"listen": {"port": 8080},
           "tenants": [{"name": "contoso", "credentials": [
               {"name": "graph", "client_secret": SecretStr("old-secret")},
               {"name": "writer", "client_secret": SecretStr("same")}]},
               {"name": "fabrikam", "mapping": None}],
           "pbx_connections": [{"name": "sw", "mapping": {"teams_to_pbx": []}}]}
    new = {"listen": {"port": 8080},
           "tenants": [{"name": "contoso", "credentials": [
               {"name": "writer", "client_secret": SecretStr("same")},
               {"name": "graph", "client_secret": SecretStr("new-secret")}]},
               {"name": "northwind"}],
           "pbx_connections": [{"name": "sw", "mapping": {"teams_to_pbx": [{"pbx": "dnd"}]}}],
           "admin": {"enabled": True}}
    found = differences(old, new)
    assert found == ["admin", "pbx_connections[sw].mapping.teams_to_pbx",
                     "tenants[contoso].credentials[graph].client_secret",
                     "tenants[fabrikam]", "tenants[northwind]"]
    assert not any("secret" in p and "-" in p for p in found)
    assert [applies_at_once(p) for p in found] == [False, True, True, False, False]
    # A mapping waits for a restart when the PBX connections changed too.
    assert not applies_at_once(found[1], same_connections=False)
    assert differences(old, old) == []


def test_the_same_file_read_twice_has_no_differences(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG)
    first, second = load_config(path, environ={}), load_config(path, environ={})
    assert differences(first.model_dump(), second.model_dump()) == []
    changed = write_config(tmp_path, CONFIG.replace(SECRET, "An0ther~secret~value~here"))
    third = load_config(changed, environ={})
    assert differences(first.model_dump(), third.model_dump()) == [
        "tenants[contoso].credentials[graph].client_secret"]
