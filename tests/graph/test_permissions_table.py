"""docs/permissions.md shows admins the same table of permissions per feature as the code."""

from __future__ import annotations

import re
from pathlib import Path

from m365pbx.core.credentials import Permission
from m365pbx.graph.permissions import (
    FEATURES,
    admin_consent_url,
    application_roles,
    delegated_scopes,
    has_permission,
    missing,
    token_claims,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
PERMISSION_NAME = re.compile(r"`([A-Za-z]+(?:\.[A-Za-z]+)+|offline_access)`")


def _doc_rows() -> dict[str, tuple[tuple[str, ...], tuple[str, ...], str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Per feature", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("feature", "") or set(cells[0]) <= {"-"}:
            continue
        feature, _calls, application, delegated, entry = cells
        rows[feature] = (tuple(PERMISSION_NAME.findall(application)),
                         tuple(PERMISSION_NAME.findall(delegated)), entry.strip("`"))
    return rows


def test_the_doc_table_and_the_code_table_agree() -> None:
    in_code = {need.feature: (need.application, need.delegated, need.entry.value)
               for need in FEATURES}
    assert _doc_rows() == in_code


def test_every_permission_entry_has_a_feature() -> None:
    assert {need.entry for need in FEATURES} == set(Permission)


def test_broader_permissions_cover_narrower_ones() -> None:
    assert has_permission(["Presence.ReadWrite.All"], "Presence.Read.All")
    assert not has_permission(["Presence.Read.All"], "Presence.ReadWrite.All")
    assert has_permission(["directory.read.all"], "GroupMember.Read.All")
    assert missing(["User.Read.All"], ["User.Read.All", "Presence.ReadWrite.All"]) == [
        "Presence.ReadWrite.All"]


def test_claims_are_read_from_a_token() -> None:
    import base64
    import json

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    app = f"{part({'alg': 'RS256'})}.{part({'roles': ['User.Read.All']})}.sig"
    user = f"{part({'alg': 'RS256'})}.{part({'scp': 'Presence.Read.All User.Read'})}.sig"
    assert application_roles(token_claims(app)) == ["User.Read.All"]
    assert delegated_scopes(token_claims(user)) == ["Presence.Read.All", "User.Read"]
    assert token_claims("opaque-token") == {}
    assert token_claims("a.!!!.c") == {}


def test_the_admin_consent_url_is_built_from_the_login_host() -> None:
    assert admin_consent_url("https://login.microsoftonline.us/", "contoso.com", "abc") == (
        "https://login.microsoftonline.us/contoso.com/adminconsent?client_id=abc")
