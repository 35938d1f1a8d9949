"""The admin UI's pieces without a browser: lights from statuses, CSRF tokens."""

from __future__ import annotations

from m365pbx.core.status import PartState, PartStatus
from m365pbx.web.admin_ui.overview import groups, light
from m365pbx.web.admin_ui.sessions import same_token


def test_lights_name_the_part_carry_the_aadsts_code_and_put_the_worst_first() -> None:
    statuses = [
        PartStatus("pbx/switchboard", "pbx_connection", PartState.OK),
        PartStatus("store", "store", PartState.OK),
        PartStatus("tenant/contoso/directory", "directory", PartState.DEGRADED, None, "slow"),
        PartStatus("tenant/contoso/service_account/svc@contoso.com", "service_account",
                   PartState.OK, counters={"people": 640}),
        PartStatus("tenant/contoso/sign_in/2", "sign_in", PartState.BAD_CREDENTIALS, None,
                   "graph: the client secret is wrong (AADSTS7000215)", "Paste the Value"),
    ]
    found = groups(statuses)
    assert [g.title for g in found] == ["Tenant contoso", "PBX connections", "m365pbx"]
    contoso = found[0]
    assert contoso.colour == "red"
    assert [(one.title, one.colour) for one in contoso.lights] == [
        ("App sign-in: 2", "red"), ("Directory sync", "amber"),
        ("Service account: svc@contoso.com", "green")]
    assert contoso.lights[0].aadsts == "AADSTS7000215"
    assert contoso.lights[0].fix == "Paste the Value"
    assert contoso.lights[2].people == 640
    assert light(statuses[0]).title == "PBX connection: switchboard"
    assert light(statuses[1]).title == "Database" and light(statuses[1]).people is None


def test_csrf_tokens_compare_whole_and_never_empty() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd")
    assert not same_token("", "")
    assert not same_token(None, None)
    assert not same_token("abc", None)
