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


def test_the_pbx_note_is_not_sent_to_teams_unless_enabled(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    assert not load_config(path, environ={}).pbx_connections[0].push_pbx_note_to_teams
    path.write_text(BASE + "    push_pbx_note_to_teams: true\n")
    assert load_config(path, environ={}).pbx_connections[0].push_pbx_note_to_teams


PER_PERSON = BASE + """    per_person:
      - people: ["1001", Anna.Berg@Contoso.com]
        push_line_state_to_teams: false
      - people: [ceo@contoso.com]
        pbx_wins: true
"""


def test_per_person_switches_name_people_by_pbx_key_or_sign_in_name(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PER_PERSON)
    connection = load_config(path, environ={}).pbx_connections[0]
    anna = connection.switches_for(["anna", "anna.berg@contoso.com"])
    assert anna is not None and anna.push_line_state_to_teams is False
    assert anna.pbx_wins is None  # unset: the connection's value applies
    by_key = connection.switches_for(["1001", ""])
    assert by_key is anna
    ceo = connection.switches_for(["9000", "CEO@contoso.com"])
    assert ceo is not None and ceo.pbx_wins is True
    assert connection.switches_for(["2002", "someone@contoso.com"]) is None


def test_a_person_named_twice_is_an_error_with_both_entries(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(PER_PERSON.replace("[ceo@contoso.com]", "[ceo@contoso.com, '1001']"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "'1001' is named in per_person entries 1 and 2" in str(caught.value)


@pytest.mark.parametrize(("entry", "expected"), [
    ("      - {people: []}\n", "per_person"),
    ("      - {people: ['  ']}\n", "not an empty string"),
    ("      - {people: ['1001'], push_line_state: false}\n", "push_line_state"),
    ("      - {people: ['1001'], pbx_wins: sometimes}\n", "pbx_wins"),
])
def test_broken_per_person_entries_are_refused_in_words(tmp_path: Path, entry: str,
                                                        expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "    per_person:\n" + entry)
    with pytest.raises(ConfigError, match=expected):
        load_config(path, environ={})
