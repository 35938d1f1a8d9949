from datetime import timedelta
from pathlib import Path

import pytest

from m365pbx.config import ConfigError, load_config

BASE = """
tenants:
  - name: contoso
    tenant_id: 9188040d-6c67-4c5b-b112-36a304b66dad
    credentials:
      - {name: graph, client_id: 6731de76-14a6-49ae-97bc-6eba6914391e, client_secret: x,
         permissions: [presence.read]}
pbx_connections:
  - name: office
    kind: api
    tenant: contoso
"""


def test_policy_switches_default_to_the_product_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    connection = load_config(path, environ={}).pbx_connections[0]
    assert connection.push_pbx_presence_to_teams and not connection.only_replace_available_busy
    assert not connection.pbx_wins
    assert connection.call_end_hold_down == timedelta(seconds=1)


def test_policy_switches_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "    only_replace_available_busy: true\n    pbx_wins: true\n"
                    "    call_end_hold_down: 3s\n")
    connection = load_config(path, environ={}).pbx_connections[0]
    assert connection.only_replace_available_busy and connection.pbx_wins
    assert connection.call_end_hold_down == timedelta(seconds=3)
    path.write_text(BASE + "    call_end_hold_down: soon\n")
    with pytest.raises(ConfigError, match="call_end_hold_down"):
        load_config(path, environ={})
