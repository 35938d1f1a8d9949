"""$filter on /users: the supported subset, advanced-only clauses, and refusals."""

from __future__ import annotations

import httpx
import pytest

from m365sim.directory.changes import update_user
from m365sim.directory.odata_filter import (
    BoolOp,
    Call,
    Compare,
    CountCompare,
    In,
    Lambda,
    Literal,
    Not,
    parse_filter,
)
from m365sim.errors import GraphError
from m365sim.model import TEAMS_PLAN_ID, Tenant
from m365sim.simulator import Simulator
from tests.sim.directory.conftest import EVENTUAL
from tests.sim.directory.schemas import check_error, fixture

TEAMS = (f"assignedPlans/any(a:a/servicePlanId eq {TEAMS_PLAN_ID} and "
         f"a/capabilityStatus eq 'Enabled')")


def test_parser_builds_the_tree_for_the_forms_m365pbx_uses() -> None:
    assert parse_filter("mail eq 'O''Brien@contoso.com'") == \
        Compare(("mail",), "eq", Literal("string", "O'Brien@contoso.com"))
    node = parse_filter(TEAMS)
    assert isinstance(node, Lambda) and node.collection == "assignedPlans"
    assert node.body == BoolOp(
        "and", Compare(("a", "servicePlanId"), "eq", Literal("guid", TEAMS_PLAN_ID)),
        Compare(("a", "capabilityStatus"), "eq", Literal("string", "Enabled")))
    assert parse_filter("NOT startsWith(displayName,'Conf') OR id in ('a', 'b')") == BoolOp(
        "or", Not(Call("startswith", ("displayName",), Literal("string", "Conf"))),
        In(("id",), (Literal("string", "a"), Literal("string", "b"))))
    assert parse_filter("assignedLicenses/$count eq 0") == \
        CountCompare("assignedLicenses", "eq", 0)
    assert parse_filter("accountEnabled eq false and displayName eq null") == BoolOp(
        "and", Compare(("accountEnabled",), "eq", Literal("bool", False)),
        Compare(("displayName",), "eq", Literal("null", None)))


@pytest.mark.parametrize("text", [
    "", "displayName eq", "displayName eq 'x", "displayName = 'x'", "(mail eq 'a'",
    "mail eq 'a' and", "startsWith(mail)", "proxyAddresses/every(p:p eq 'x')",
    "mail eq 'a' mail eq 'b'", "displayName eq #", "(" * 500 + "mail eq 'a'" + ")" * 500,
    "not " * 500 + "accountEnabled eq true",
])
def test_parser_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_filter(text)
    assert caught.value.status == 400 and caught.value.code == "BadRequest"


async def upns(client: httpx.AsyncClient, headers: dict[str, str], clause: str,
               advanced: bool = False) -> set[str]:
    params = {"$filter": clause, "$select": "userPrincipalName", "$top": "999"}
    if advanced:
        params["$count"] = "true"
    response = await client.get("/v1.0/users", params=params,
                                headers={**headers, **(EVENTUAL if advanced else {})})
    assert response.status_code == 200, response.text
    return {u["userPrincipalName"] for u in response.json()["value"]}


async def test_default_clauses_match_case_insensitively(
    client: httpx.AsyncClient, app_headers: dict[str, str]
) -> None:
    assert await upns(client, app_headers, "userPrincipalName eq 'ANNA@contoso.com'") == \
        {"anna@contoso.com"}
    assert await upns(client, app_headers, "startsWith(displayName,'b')") == {"ben@contoso.com"}
    assert await upns(client, app_headers, "mail in ('ben@contoso.com','mfa@contoso.com')") == \
        {"ben@contoso.com", "mfa@contoso.com"}
    assert await upns(client, app_headers, "accountEnabled eq false") == {"off@contoso.com"}
    assert await upns(client, app_headers, "mailNickname eq 'anna' or mailNickname eq 'ben'") \
        == {"anna@contoso.com", "ben@contoso.com"}
    assert await upns(client, app_headers,
                      "proxyAddresses/any(p:startsWith(p,'smtp:svc'))") == \
        {"svc-presence@contoso.com"}
    assert await upns(client, app_headers,
                      "businessPhones/any(p:p eq '+49 30 5550201')") == {"anna@contoso.com"}


async def test_long_or_chains_work(client: httpx.AsyncClient,
                                    app_headers: dict[str, str]) -> None:
    clause = " or ".join(f"mail eq 'nobody{n}@contoso.com'" for n in range(1500))
    assert await upns(client, app_headers, clause + " or mail eq 'ben@contoso.com'") == \
        {"ben@contoso.com"}


async def test_teams_users_are_found_by_their_enabled_service_plan(
    client: httpx.AsyncClient, app_headers: dict[str, str], sim: Simulator, tenant: Tenant
) -> None:
    ben = tenant.find_user("ben@contoso.com")
    assert ben is not None
    update_user(sim, tenant, ben, {"assignedPlans": [
        {**ben.assigned_plans[0], "capabilityStatus": "Suspended"}]})
    found = await upns(client, app_headers, TEAMS)
    assert found == {"svc-presence@contoso.com", "anna@contoso.com", "mfa@contoso.com"}


async def test_advanced_only_clauses_need_the_header_and_count(
    client: httpx.AsyncClient, app_headers: dict[str, str], crowd: Tenant
) -> None:
    documented = fixture("graph-error-unsupported-query.response.json")["error"]
    refused = await client.get("/v1.0/users?$filter=onPremisesSamAccountName eq 'x'",
                               headers=app_headers)
    assert refused.status_code == 400
    check_error(refused.json())
    assert refused.json()["error"]["code"] == documented["code"]
    assert refused.json()["error"]["message"] == documented["message"]
    for clause in ("endsWith(mail,'@contoso.com')", "accountEnabled ne true",
                   "not(accountEnabled eq true)", "assignedLicenses/$count eq 0",
                   "displayName eq null"):
        response = await client.get(f"/v1.0/users?$filter={clause}", headers=app_headers)
        assert response.status_code == 400, clause
        assert response.json()["error"]["code"] == "Request_UnsupportedQuery", clause
        header_only = await client.get(f"/v1.0/users?$filter={clause}",
                                       headers={**app_headers, **EVENTUAL})
        assert header_only.status_code == 400, clause  # $count=true is needed too
    ends = await client.get("/v1.0/users?$filter=endsWith(mail,'x')", headers=app_headers)
    assert ends.json()["error"]["message"].startswith(
        "Operator 'endsWith' is not supported because the required parameters might be "
        "missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header.")
    sam = next(u for u in crowd.users.values() if u.on_premises_sam_account_name)
    assert await upns(client, app_headers,
                      f"onPremisesSamAccountName eq '{sam.on_premises_sam_account_name}'",
                      advanced=True) == {sam.user_principal_name}
    disabled = {u.user_principal_name for u in crowd.users.values() if not u.account_enabled}
    assert await upns(client, app_headers, "accountEnabled ne true", advanced=True) == disabled
    unlicensed = {u.user_principal_name for u in crowd.users.values()
                  if not u.assigned_licenses}
    assert await upns(client, app_headers, "assignedLicenses/$count eq 0",
                      advanced=True) == unlicensed
    assert await upns(client, app_headers, "endsWith(userPrincipalName,'n@contoso.com')",
                      advanced=True) == {u.user_principal_name for u in crowd.users.values()
                                         if u.user_principal_name.endswith("n@contoso.com")}


@pytest.mark.parametrize(("clause", "code", "words"), [
    ("shoeSize eq 42", "BadRequest", "Could not find a property named 'shoeSize'"),
    ("accountEnabled eq 'yes'", "BadRequest", "incompatible types"),
    ("displayName eq true", "BadRequest", "'Edm.String' and 'Edm.Boolean'"),
    ("city eq 'Berlin'", "Request_UnsupportedQuery", "property 'city'"),
    ("proxyAddresses eq 'smtp:x'", "Request_UnsupportedQuery", "property 'proxyAddresses'"),
    ("assignedPlans/all(a:a/service eq 'x')", "Request_UnsupportedQuery", "assignedPlans"),
    ("displayName gt 'a'", "Request_UnsupportedQuery", "displayName"),
    ("startsWith(accountEnabled,'t')", "Request_UnsupportedQuery", "accountEnabled"),
])
async def test_clauses_graph_refuses_get_its_errors(
    client: httpx.AsyncClient, app_headers: dict[str, str], clause: str, code: str, words: str
) -> None:
    response = await client.get(f"/v1.0/users?$filter={clause}", headers=app_headers)
    assert response.status_code == 400
    check_error(response.json())
    assert response.json()["error"]["code"] == code
    assert words in response.json()["error"]["message"]
