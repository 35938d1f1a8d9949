"""`cluster`: several nodes on one database (issue 25); refused on SQLite in words."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from tests.config.conftest import Load, Problems, valid

PG = "postgresql+asyncpg://m365pbx@db.example.com/m365pbx"


def api_only() -> dict[str, Any]:
    """The valid configuration with its SIP connection as a built-in API connection."""
    data = valid()
    data["pbx_connections"] = [{"name": "office", "kind": "api", "tenant": "contoso"}]
    return data


def test_one_node_on_sqlite_is_the_default(load: Load) -> None:
    settings = load(valid())
    assert not settings.cluster.enabled
    assert settings.cluster.lease_lifetime == timedelta(seconds=30)
    assert settings.database.url.startswith("sqlite")


def test_several_nodes_on_postgresql(load: Load) -> None:
    data = api_only() | {"database": {"url": PG},
                      "cluster": {"enabled": True, "node_id": "pbx-gw-2", "lease_lifetime": "45s"}}
    settings = load(data)
    assert settings.cluster.enabled and settings.cluster.node() == "pbx-gw-2"
    assert settings.cluster.lease_lifetime == timedelta(seconds=45)


def test_the_node_id_defaults_to_host_name_and_process_id(load: Load) -> None:
    settings = load(api_only() | {"database": {"url": PG}, "cluster": {"enabled": True}})
    assert settings.cluster.node() == f"{socket.gethostname()}-{os.getpid()}"


def test_several_nodes_on_sqlite_are_refused_where_they_are_asked_for(problems: Problems
                                                                        ) -> None:
    text = """
        database:
          url: sqlite+aiosqlite:///var/m365pbx.db
        cluster:
          enabled: true
    """
    error = problems(text)
    [problem] = error.problems
    assert problem.path == "cluster.enabled" and problem.line == 4
    assert "several nodes cannot share a SQLite database" in problem.message
    assert "postgresql+asyncpg://" in problem.message


def test_the_default_database_is_sqlite_too(problems: Problems) -> None:
    error = problems(api_only() | {"cluster": {"enabled": True}})
    assert [p.path for p in error.problems] == ["cluster.enabled"]


def test_the_environment_can_turn_a_node_into_one_of_several(load: Load, problems: Problems
                                                             ) -> None:
    settings = load(api_only() | {"database": {"url": PG}},
                    environ={"M365PBX_CLUSTER__ENABLED": "true",
                             "M365PBX_CLUSTER__NODE_ID": "gw-3"})
    assert settings.cluster.enabled and settings.cluster.node() == "gw-3"
    error = problems(valid(), environ={"M365PBX_CLUSTER__ENABLED": "true"})
    assert "SQLite" in str(error)


def test_bad_cluster_values_are_refused_in_words(problems: Problems) -> None:
    error = problems(api_only() | {"database": {"url": PG},
                                   "cluster": {"enabled": True, "node_id": "two words",
                                            "lease_lifetime": "1s"}})
    messages = {p.path: p.message for p in error.problems}
    assert set(messages) == {"cluster.node_id", "cluster.lease_lifetime"}
    assert "under 3s" in messages["cluster.lease_lifetime"]
    assert "without spaces" in messages["cluster.node_id"]


def test_a_sip_connection_runs_on_several_nodes(load: Load) -> None:
    # Refused until issue 25 gave SIP publications the tenant's lease (docs/cluster.md).
    settings = load(valid() | {"database": {"url": PG}, "cluster": {"enabled": True}})
    assert settings.cluster.enabled
    assert [c.kind for c in settings.pbx_connections] == ["sip"]


def test_a_sip_connection_on_sqlite_is_still_refused_for_several_nodes(problems: Problems
                                                                       ) -> None:
    error = problems(valid() | {"cluster": {"enabled": True}})
    assert [p.path for p in error.problems] == ["cluster.enabled"]


def test_the_nats_transport_for_several_nodes(load: Load, tmp_path: Any) -> None:
    settings = load(api_only() | {"database": {"url": PG}, "cluster": {"enabled": True}})
    assert settings.cluster.transport == "database"
    assert settings.cluster.nats_url == "nats://127.0.0.1:4222"
    password = tmp_path / "nats-url"
    password.write_text("nats://gw:s3cret-Passw0rd!@nats.example.com:4222\n")
    settings = load(api_only() | {"database": {"url": PG},
                                  "cluster": {"enabled": True, "transport": "nats",
                                              "nats_url": {"file": str(password)},
                                              "nats_prefix": "pbx-prod"}})
    assert settings.cluster.transport == "nats" and settings.cluster.nats_prefix == "pbx-prod"
    assert settings.cluster.nats_url == "nats://gw:s3cret-Passw0rd!@nats.example.com:4222"
    shown = str(settings.redacted())
    assert "s3cret" not in shown and "nats://gw:********@nats.example.com:4222" in shown


def test_the_nats_transport_is_refused_on_a_single_node(problems: Problems) -> None:
    text = """
        cluster:
          transport: nats
    """
    [problem] = problems(text).problems
    assert problem.path == "cluster.transport" and problem.line == 2
    assert "set cluster.enabled: true" in problem.message


def test_a_nats_url_must_be_one(problems: Problems) -> None:
    error = problems(api_only() | {"database": {"url": PG},
                                   "cluster": {"enabled": True, "transport": "nats",
                                               "nats_url": "http://nats.example.com"}})
    messages = {p.path: p.message for p in error.problems}
    assert "nats://host:4222" in messages["cluster.nats_url"]
    error = problems(api_only() | {"database": {"url": PG},
                                   "cluster": {"enabled": True, "transport": "kafka"}})
    assert [p.path for p in error.problems] == ["cluster.transport"]
