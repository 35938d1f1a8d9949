"""Loading the input files of `m365pbx match`: what loads, and what each broken file says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from m365pbx.core.matching import MatchOptions, PbxUser, match_users, parse_rule
from m365pbx.directory_files import detect_delimiter, load_pbx_users, load_teams_users
from m365pbx.errors import UserInputError

GRAPH_USERS_PAGE = Path(__file__).parent / "fixtures" / "graph" / "users-list-page.response.json"
SAMPLES = Path(__file__).parents[1] / "src" / "m365pbx" / "samples"


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def error_of(call: Callable[..., object], *args: object) -> str:
    with pytest.raises(UserInputError) as caught:
        call(*args)
    return caught.value.describe()


# --- Microsoft users (Graph JSON) ------------------------------------------------------------


def test_graph_users_page_loads_warns_about_paging_and_matches_by_phone() -> None:
    loaded = load_teams_users(GRAPH_USERS_PAGE)
    assert [user["displayName"] for user in loaded.users] == ["Adele Vance", "Megan Bowen"]
    assert any("@odata.nextLink" in warning for warning in loaded.warnings)
    people = [
        PbxUser("adele", {"cn": "ADELE VANCE"}),
        PbxUser("megan", {"mobile": "(412) 555-0110"}),
    ]
    rules = (parse_rule("cn=displayName"), parse_rule("mobile=mobilePhone"))
    result = match_users(people, loaded.users, MatchOptions(rules=rules, phone_region="US"))
    assert {(item.pbx, item.teams, item.rule) for item in result.matched} == {
        ("adele", "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "cn=displayName"),
        ("megan", "6e7b768e-07e2-4810-8459-485f84f8f204", "mobile=mobilePhone"),
    }


def test_teams_file_may_be_a_list_of_pages_or_of_users(tmp_path: Path) -> None:
    pages = [{"value": [{"id": "a"}], "@odata.nextLink": "https://x"}, {"value": [{"id": "b"}]}]
    loaded = load_teams_users(write(tmp_path, "pages.json", json.dumps(pages)))
    assert [user["id"] for user in loaded.users] == ["a", "b"]
    assert loaded.warnings == []
    plain = load_teams_users(write(tmp_path, "plain.json", '[{"id": "c"}]'))
    assert [user["id"] for user in plain.users] == ["c"]


def test_teams_file_with_utf8_bom_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "bom.json", '\ufeff{"value": [{"id": "a", "displayName": "Zoë"}]}')
    assert load_teams_users(path).users[0]["displayName"] == "Zoë"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"value": [\n  {"id": "a",}\n]}', "broken.json:line 2, column 14: not valid JSON"),
        ("", "broken.json: the file is empty; expected JSON"),
        ('{"id": "a", "displayName": "A"}', "broken.json: no 'value' key; expected what GET"),
        ('"users"', "broken.json: found a JSON str; expected what GET /v1.0/users returns"),
        ('{"value": {"id": "a"}}', "broken.json:value: 'value' must be a list of users"),
        ('{"value": [{"id": "a"}, "b"]}', "broken.json:value[1]: a user must be a JSON object"),
        (
            '{"value": [{"id": "a"}, {"displayName": "B"}]}',
            "broken.json:value[1]: this user has no 'id'",
        ),
        (
            '[{"value": [{"id": "a"}]}, {"value": [{"id": "a"}]}]',
            "broken.json:[1].value[0]: id 'a' appears twice: at [0].value[0] and [1].value[0]",
        ),
        (
            '{"error": {"code": "Authorization_RequestDenied", "message": "Insufficient"}}',
            "this is a Graph error answer (Authorization_RequestDenied: Insufficient)",
        ),
    ],
)
def test_broken_teams_files_name_the_place(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path, "broken.json", content)
    message = error_of(load_teams_users, path)
    assert message.startswith(str(path.parent))
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    assert error_of(load_teams_users, missing) == f"{missing}: file not found"


# --- PBX users (CSV or JSON) -----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiters_are_detected(tmp_path: Path, delimiter: str) -> None:
    rows = ["h323,cn,email,department", 'anna,"Schmidt; Anna",anna@x.de,"Sales, EMEA"']
    text = "\n".join(row.replace(",", delimiter) if delimiter != "," else row for row in rows)
    if delimiter != ",":
        text = text.replace('"Schmidt; Anna"', '"Schmidt, Anna"')
    loaded = load_pbx_users(write(tmp_path, "pbx.csv", text + "\n"))
    assert loaded.columns == ("h323", "cn", "email", "department")
    assert loaded.users[0].key == "anna"
    assert loaded.users[0].value("email") == "anna@x.de"


def test_delimiter_inside_quotes_does_not_count() -> None:
    assert detect_delimiter('h323;"name, long";email') == ";"
    assert detect_delimiter("h323") == ","


def test_bundled_sample_loads(tmp_path: Path) -> None:
    loaded = load_pbx_users(SAMPLES / "pbx-users.csv")
    assert "department" in loaded.columns
    assert 30 <= len(loaded.users) <= 60
    assert 30 <= len(load_teams_users(SAMPLES / "teams-users.json").users) <= 60


def test_utf8_with_bom_and_header_names_in_any_case(tmp_path: Path) -> None:
    path = write(tmp_path, "pbx.csv", "\ufeffH323;CN;Email\r\nzoe;Zoë Meier;zoe@x.de\r\n")
    loaded = load_pbx_users(path)
    assert loaded.columns == ("h323", "cn", "email")
    assert loaded.users == [PbxUser("zoe", {"cn": "Zoë Meier", "email": "zoe@x.de"})]


def test_cp1252_is_refused_with_a_hint_unless_asked_for(tmp_path: Path) -> None:
    path = write(
        tmp_path, "excel.csv", "h323;cn\nanna;Anna\nmueller;Jürgen Müller\n".encode("cp1252")
    )
    message = error_of(load_pbx_users, path)
    assert message.startswith(f"{path}:line 3: not valid utf-8 text: byte 0xfc at offset 27")
    assert "--encoding cp1252" in message
    loaded = load_pbx_users(path, "cp1252")
    assert loaded.users[1].value("cn") == "Jürgen Müller"


def test_utf16_with_bom_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "unicode.txt", "h323\tcn\nzoe\tZoë\n".encode("utf-16"))
    assert load_pbx_users(path).users[0].value("cn") == "Zoë"


def test_unknown_encoding_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "pbx.csv", "h323\nanna\n")
    assert "unknown encoding 'latin-42'" in error_of(load_pbx_users, path, "latin-42")


def test_missing_h323_column_names_the_columns_found(tmp_path: Path) -> None:
    path = write(tmp_path, "pbx.csv", "name;cn;email\nanna;Anna;a@x.de\n")
    assert error_of(load_pbx_users, path) == (
        f"{path}:line 1: no 'h323' column (the PBX short name that identifies each user); "
        "columns found: name, cn, email"
    )


def test_duplicate_h323_names_the_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "pbx.csv", "h323,cn\nanna,A\nbob,B\n\nanna,A2\n")
    assert error_of(load_pbx_users, path) == (
        f"{path}:line 5: h323 must be unique, but some appear more than once: "
        "'anna' on line 2, line 5"
    )


def test_rows_with_missing_fields_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "pbx.csv", 'h323,cn,email\nanna,"Anna\nSchmidt",a@x.de\nbob,Bob\n')
    assert error_of(load_pbx_users, path) == (
        f"{path}:line 4: 2 fields, but the header has 3 columns"
    )


def test_empty_h323_and_empty_file_and_duplicate_columns(tmp_path: Path) -> None:
    empty_key = write(tmp_path, "a.csv", "h323,cn\n,Anna\n")
    assert "line 2: empty 'h323'" in error_of(load_pbx_users, empty_key)
    empty = write(tmp_path, "b.csv", "\n\n")
    assert "the file is empty" in error_of(load_pbx_users, empty)
    twice = write(tmp_path, "c.csv", "h323,cn,CN\n")
    assert "two columns are named 'cn'" in error_of(load_pbx_users, twice)


def test_pbx_json_list_of_objects(tmp_path: Path) -> None:
    users = [{"h323": "anna", "cn": "Anna", "extension": 201, "sip": None, "costCentre": "4711"}]
    loaded = load_pbx_users(write(tmp_path, "pbx.json", json.dumps(users)))
    assert loaded.columns == ("h323", "cn", "extension", "sip", "costCentre")
    assert loaded.users == [
        PbxUser("anna", {"cn": "Anna", "extension": "201", "costCentre": "4711"})
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"h323": "anna"}', "expected a JSON list of PBX user objects, found a dict"),
        ('[{"h323": "anna", "phones": ["1", "2"]}]', "[0].phones: unsupported value of type list"),
        (
            '[{"cn": "Anna"}]',
            "no 'h323' key (the PBX short name that identifies each user); keys found: cn",
        ),
        ('[{"h323": "a"}, {"h323": "a"}]', "'a' on [0], [1]"),
        ("[\n{]", "line 2, column 2: not valid JSON"),
    ],
)
def test_broken_pbx_json_names_the_place(tmp_path: Path, content: str, expected: str) -> None:
    path = write(tmp_path, "pbx.json", content)
    assert expected in error_of(load_pbx_users, path)
