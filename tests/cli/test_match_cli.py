"""`m365pbx match` against the bundled sample and against broken files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from m365pbx.cli import match as match_module
from m365pbx.cli.app import _register, app

runner = CliRunner()
ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "src" / "m365pbx" / "samples"
TEAMS = str(SAMPLES / "teams-users.json")
PBX = str(SAMPLES / "pbx-users.csv")
GRAPH_USERS_PAGE = ROOT / "tests" / "fixtures" / "graph" / "users-list-page.response.json"


@pytest.fixture(autouse=True)
def registered() -> None:
    _register()


def match(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["match", *args])
    return result.exit_code, result.stdout, result.stderr


def sample_json(*args: str) -> dict[str, list[dict[str, object]]]:
    code, out, err = match("--teams", TEAMS, "--pbx", PBX, "--format", "json", *args)
    assert code == 0, err
    return json.loads(out)


def ids_by_name() -> dict[str, list[str]]:
    users = json.loads(Path(TEAMS).read_text(encoding="utf-8"))["value"]
    names: dict[str, list[str]] = {}
    for user in users:
        names.setdefault(user["displayName"], []).append(user["id"])
    return names


def test_sample_table_is_a_three_part_report_with_a_summary() -> None:
    code, out, _ = match("--teams", TEAMS, "--pbx", PBX)
    assert code == 0
    assert "Matched (29)" in out
    assert "Ambiguous (4)" in out
    assert "Unmatched (" in out
    assert "42 PBX users, 41 Microsoft users: 29 matched, 4 ambiguous" in " ".join(out.split())


def test_sample_json_has_exactly_the_documented_parts() -> None:
    document = sample_json()
    assert set(document) == {"matched", "unmatched", "ambiguous", "warnings", "summary"}
    assert all(set(item) == {"pbx", "teams", "rule"} for item in document["matched"])
    assert all(set(item) == {"side", "key", "reason"} for item in document["unmatched"])
    assert all(set(item) == {"pbx", "candidates", "reason"} for item in document["ambiguous"])
    names = ids_by_name()
    matched = {item["pbx"]: item["teams"] for item in document["matched"]}
    assert matched["zmeier"] == names["Zoë Meier"][0]
    assert matched["osorensen"] == names["Ole Sørensen"][0]
    ambiguous = {item["pbx"]: item for item in document["ambiguous"]}
    assert sorted(ambiguous["tmueller"]["candidates"]) == sorted(names["Thomas Müller"])
    unmatched = {(item["side"], item["key"]): item["reason"] for item in document["unmatched"]}
    assert unmatched[("pbx", "empfang")] == (
        "no Microsoft user has displayName = 'Empfang' (rule cn=displayName)"
    )
    assert unmatched[("teams", names["Lena Vogel"][0])] == "no PBX user matched"
    assert unmatched[("teams", names["Peter Schulz"][0])].startswith("account disabled")


def test_more_rules_resolve_aliases_accents_and_ambiguity() -> None:
    document = sample_json(
        "--rule",
        "cn=displayName",
        "--rule",
        "email=proxyAddresses",
        "--rule",
        "phone=businessPhones",
        "--phone-region",
        "DE",
    )
    names = ids_by_name()
    matched = {item["pbx"]: (item["teams"], item["rule"]) for item in document["matched"]}
    assert matched["skoch"] == (names["Sabine Koch"][0], "email=proxyAddresses")
    assert matched["jweiss"] == (names["Jürgen Weiß"][0], "email=proxyAddresses")
    assert matched["nhartmann"] == (names["Nina Hofmann"][0], "email=proxyAddresses")
    assert matched["tmueller"][1] == "email=proxyAddresses"
    assert {item["pbx"] for item in document["ambiguous"]} == {"tmueller2", "mlopez", "mlopez-ho"}


def test_pin_and_exclude_from_the_command_line() -> None:
    names = ids_by_name()
    maria = names["Maria López"][0]
    document = sample_json(
        "--pin", f"mlopez={maria}", "--exclude", "mlopez-ho", "--exclude", names["Lena Vogel"][0]
    )
    matched = {item["pbx"]: (item["teams"], item["rule"]) for item in document["matched"]}
    assert matched["mlopez"] == (maria, "pin")
    unmatched = {(item["side"], item["key"]): item["reason"] for item in document["unmatched"]}
    assert unmatched[("pbx", "mlopez-ho")] == "excluded"
    assert unmatched[("teams", names["Lena Vogel"][0])] == "excluded"


@pytest.mark.parametrize(
    ("args", "pbx", "expected_rule"),
    [
        ([], "zmeier", "cn=displayName"),
        (["--no-unicode-normalize"], "zmeier", None),
        (["--no-casefold"], "mbauer", None),
        ([], "krichter", None),
        (["--no-licence-filter"], "krichter", "cn=displayName"),
        (["--rule", "email=mailNickname"], "aschmidt", None),
        (["--rule", "email=mailNickname", "--strip-domain"], "aschmidt", "email=mailNickname"),
        (["--rule", "h323=onPremisesSamAccountName"], "jweiss", "h323=onPremisesSamAccountName"),
        (["--rule", "sip=sipProxyAddresses"], "swolf", "sip=sipProxyAddresses"),
        (["--group", "no-such-group"], "zmeier", None),
    ],
)
def test_switches_change_what_matches(args: list[str], pbx: str, expected_rule: str | None) -> None:
    matched = {item["pbx"]: item["rule"] for item in sample_json(*args)["matched"]}
    assert matched.get(pbx) == expected_rule


def test_csv_output_has_one_row_per_item_with_a_part_column() -> None:
    code, out, _ = match("--teams", TEAMS, "--pbx", PBX, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    document = sample_json()
    assert len(rows) == sum(len(document[part]) for part in ("matched", "unmatched", "ambiguous"))
    assert {row["part"] for row in rows} == {"matched", "unmatched", "ambiguous"}
    empfang = next(row for row in rows if row["key"] == "empfang")
    assert empfang["side"] == "pbx"
    assert empfang["reason"].startswith("no Microsoft user has displayName")


def test_output_file_receives_the_report(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    code, out, _ = match(
        "--teams", TEAMS, "--pbx", PBX, "--format", "json", "--output", str(target)
    )
    assert code == 0
    assert out == ""
    assert json.loads(target.read_text(encoding="utf-8"))["summary"]["matched"] == 29


def test_table_to_a_file_has_no_terminal_colours(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    assert match("--teams", TEAMS, "--pbx", PBX, "--output", str(target))[0] == 0
    text = target.read_text(encoding="utf-8")
    assert "Matched (29)" in text
    assert "\x1b[" not in text


def test_warnings_go_to_stderr_and_into_the_json(tmp_path: Path) -> None:
    pbx = tmp_path / "pbx.csv"
    pbx.write_text("h323,cn\nadele,Adele Vance\n", encoding="utf-8")
    code, out, err = match("--teams", str(GRAPH_USERS_PAGE), "--pbx", str(pbx), "--format", "json")
    assert code == 0
    assert "warning:" in err
    assert "@odata.nextLink" in err
    document = json.loads(out)
    assert any("@odata.nextLink" in warning for warning in document["warnings"])
    assert document["matched"][0]["pbx"] == "adele"


BROKEN_CASES = [
    (
        "teams",
        "broken.json",
        # A missing comma: Python 3.11 to 3.13 place this mistake alike (a trailing comma they
        # place one column apart).
        '{"value": [\n  {"id": "a" "b": 1}\n]}',
        "broken.json:line 2, column 14: not valid JSON",
    ),
    (
        "teams",
        "presence.json",
        '{"id": "a", "availability": "Available"}',
        "presence.json: no 'value' key; expected what GET /v1.0/users returns",
    ),
    (
        "teams",
        "noid.json",
        '{"value": [{"displayName": "Anna"}]}',
        "noid.json:value[0]: this user has no 'id'",
    ),
    (
        "pbx",
        "nokey.csv",
        "name;cn\nanna;Anna\n",
        "nokey.csv:line 1: no 'h323' column (the PBX short name that identifies each user);"
        " columns found: name, cn",
    ),
    (
        "pbx",
        "short.csv",
        "h323;cn;email\nanna;Anna\n",
        "short.csv:line 2: 2 fields, but the header has 3 columns",
    ),
    (
        "pbx",
        "twice.csv",
        "h323;cn\nanna;A\nanna;B\n",
        "twice.csv:line 3: h323 must be unique, but some appear more than once: 'anna' on line 2,"
        " line 3",
    ),
]


@pytest.mark.parametrize(("side", "name", "content", "expected"), BROKEN_CASES)
def test_broken_files_exit_2_with_the_place_and_write_nothing(
    tmp_path: Path, side: str, name: str, content: str, expected: str
) -> None:
    broken = tmp_path / name
    broken.write_text(content, encoding="utf-8")
    target = tmp_path / "report.json"
    teams, pbx = (str(broken), PBX) if side == "teams" else (TEAMS, str(broken))
    code, out, err = match(
        "--teams", teams, "--pbx", pbx, "--format", "json", "--output", str(target)
    )
    assert code == 2
    assert err.startswith("error: ")
    assert expected in err
    assert out == ""
    assert not target.exists()


def test_pbx_file_in_cp1252_needs_the_encoding_option(tmp_path: Path) -> None:
    pbx = tmp_path / "excel.csv"
    pbx.write_bytes("h323;cn\nkkrueger;Katharina Krüger\n".encode("cp1252"))
    code, _, err = match("--teams", TEAMS, "--pbx", str(pbx))
    assert code == 2
    assert "excel.csv:line 2: not valid utf-8 text" in err
    assert "try --encoding cp1252" in err
    code, out, _ = match(
        "--teams", TEAMS, "--pbx", str(pbx), "--encoding", "cp1252", "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["matched"][0]["pbx"] == "kkrueger"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--rule", "cn=displayname2"],
            "rule 'cn=displayname2': unknown Microsoft field 'displayname2'; valid names: "
            "displayName, mail,",
        ),
        (
            ["--rule", "mobile=mobilePhone"],
            "unknown PBX field 'mobile'; valid names (the PBX file's columns): h323, cn, email,"
            " extension, sip, phone, department",
        ),
        (["--rule", "cn"], "a rule is written PBXFIELD=MSFIELD"),
        (["--pin", "anna"], "a pin is written H323=MSID"),
        (["--pin", "anna=x", "--pin", "anna=y"], "PBX user 'anna' is pinned to two"),
        (["--phone-region", "Berlin"], "unknown phone region 'Berlin'"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], expected: str) -> None:
    code, out, err = match("--teams", TEAMS, "--pbx", PBX, *args)
    assert code == 2
    assert expected in err
    assert out == ""


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = match("--teams", str(tmp_path / "none.json"), "--pbx", PBX)
    assert code == 2
    assert "none.json: file not found" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with match_module._progress_on_terminal() as progress:
        assert progress is None
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with match_module._progress_on_terminal() as progress:
        assert progress is not None
        progress(5, 10)
    assert "matching" in terminal.getvalue()
