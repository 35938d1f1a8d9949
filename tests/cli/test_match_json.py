"""The JSON report of `m365pbx match` is `MatchResult.as_dict()` plus the file warnings."""

from __future__ import annotations

import json

from m365pbx.cli.match_json import json_report
from m365pbx.core.matching import MatchOptions, PbxUser, match_users, parse_rule
from m365pbx.core.matching.result import MatchResult

TEAMS = [
    {"id": "1", "displayName": "Zoë Dvořák", "proxyAddresses": ["SMTP:zoe@x.de"]},
    {"id": "2", "displayName": "Anna Schmidt"},
    {"id": "3", "displayName": "Anna Schmidt"},
    {"id": "4", "displayName": 'Quote "Tab"\tUser'},
]
PBX = [
    PbxUser("zoe", {"cn": "Zoe\u0308 Dvor\u030ca\u0301k"}),
    PbxUser("anna", {"cn": "anna schmidt"}),
    PbxUser("nobody", {"cn": "Nobody"}),
]


def test_the_report_is_the_result_as_a_document() -> None:
    rules = (parse_rule("cn=displayName"), parse_rule("email=proxyAddresses"))
    result = match_users(PBX, TEAMS, MatchOptions(rules=rules))
    assert result.matched and result.ambiguous and result.unmatched
    warnings = ['a "quoted" warning', "ümlaut"]
    text = json_report(result, warnings)
    expected = result.as_dict()
    expected["warnings"] = warnings
    assert json.loads(text) == expected
    assert text.endswith("}\n")
    # One entry per line: a report of 50,000 users stays readable with grep and less.
    assert sum(1 for line in text.splitlines() if line.startswith('    {"pbx"')) == len(
        result.matched) + len(result.ambiguous)


def test_an_empty_result() -> None:
    expected = MatchResult((), (), ()).as_dict()
    expected["warnings"] = []
    assert json.loads(json_report(MatchResult((), (), ()), [])) == expected
