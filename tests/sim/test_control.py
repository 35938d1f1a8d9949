"""Core control routes: health, scenario, generation, clock, user edits."""

from __future__ import annotations

from datetime import timedelta

import httpx

from m365sim.app import create_app
from m365sim.clock import VirtualClock, WallClock
from m365sim.simulator import SimSettings, Simulator
from tests.sim.conftest import TENANT_ID, app_token, bearer

FABRIKAM = {
    "limits": {"directory": {"requests": 100, "window_s": 60}},
    "tenants": [{
        "id": "5f1c0de0-0000-4000-8000-00000000fab1", "name": "Fabrikam",
        "domains": ["fabrikam.example"],
        "apps": [{"app_id": "5f1c0de0-0000-4000-8000-0000000000a1", "name": "pbx",
                  "application": ["User.Read.All"]}],
        "users": [{"upn": "lea@fabrikam.example", "display_name": "Léa Girard"}],
        "generate": {"users": 40, "seed": 2},
    }],
}


async def test_health_reports_the_simulators_time(client: httpx.AsyncClient,
                                                  clock: VirtualClock) -> None:
    body = (await client.get("/_sim/health")).json()
    assert body == {"status": "ok", "now": clock.now().isoformat()}


async def test_a_scenario_loaded_over_http_is_served_by_graph(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    loaded = await client.post("/_sim/scenario", json=FABRIKAM)
    assert loaded.status_code == 200
    summary = loaded.json()["tenants"][0]
    assert summary["name"] == "Fabrikam" and summary["users"] == 41
    assert sim.faults.limits["directory"].requests == 100
    token = sim.issuer.access_token(
        tenant_id=summary["id"], app_id="5f1c0de0-0000-4000-8000-0000000000a1",
        now=sim.clock.now(), lifetime=timedelta(hours=1), roles=["User.Read.All"])
    users = (await client.get("/v1.0/users?$top=999", headers=bearer(token))).json()["value"]
    assert len(users) == 41 and "Léa Girard" in {u["displayName"] for u in users}
    assert all(u["userPrincipalName"].endswith("@fabrikam.example") for u in users)
    listed = (await client.get("/_sim/tenants")).json()["tenants"]
    assert {t["name"] for t in listed} == {"Contoso", "Fabrikam"}


async def test_bad_scenarios_and_bodies_are_refused_with_the_reason(
    client: httpx.AsyncClient
) -> None:
    missing = await client.post("/_sim/scenario", json={"tenants": [{"name": "x"}]})
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "tenants[0].domains: at least one domain is needed"
    limits = await client.post("/_sim/scenario",
                               json={"tenants": [], "limits": {"directory": {"requests": 0,
                                                                             "window_s": 1}}})
    assert limits.status_code == 400 and "limits.directory" in limits.json()["error"]["message"]
    not_json = await client.post("/_sim/scenario", content=b"tenants: []",
                                 headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    yaml = await client.post("/_sim/scenario", content=b"tenants: []",
                             headers={"Content-Type": "application/yaml"})
    assert yaml.status_code == 415


async def test_generate_adds_people_to_a_tenant_named_by_domain(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    made = await client.post("/_sim/tenants/contoso.onmicrosoft.com/generate",
                             json={"users": 120, "seed": 5, "teams_share": 0.5})
    assert made.status_code == 200
    assert made.json()["generated"] == 120 and made.json()["total_users"] == 125
    headers = bearer(app_token(sim, ["User.Read.All"]))
    count = await client.get("/v1.0/users/$count", headers={**headers,
                                                            "ConsistencyLevel": "eventual"})
    assert count.text == "125"
    assert (await client.post("/_sim/tenants/nowhere.example/generate",
                              json={"users": 1})).status_code == 404
    for body in ({"seed": 1}, {"users": 5, "teams_share": 3}, {"users": 5, "flavour": "x"},
                 {"users": "many"}, {"users": 10**9}, {"users": 2.5}):
        assert (await client.post(f"/_sim/tenants/{TENANT_ID}/generate",
                                  json=body)).status_code == 400


async def test_the_virtual_clock_advances_and_the_wall_clock_refuses(
    client: httpx.AsyncClient, clock: VirtualClock
) -> None:
    start = clock.now()
    moved = await client.post("/_sim/clock/advance", json={"seconds": 3600})
    assert moved.status_code == 200
    assert clock.now() - start == timedelta(hours=1)
    assert moved.json()["now"] == clock.now().isoformat() and moved.json()["virtual"] is True
    assert (await client.post("/_sim/clock/advance", json={"seconds": -1})).status_code == 400
    assert (await client.post("/_sim/clock/advance", json={"seconds": "1"})).status_code == 400
    wall = Simulator(WallClock(), SimSettings(base_url="https://wall.test"))
    transport = httpx.ASGITransport(app=create_app(wall))
    async with httpx.AsyncClient(transport=transport, base_url="https://wall.test") as other:
        refused = await other.post("/_sim/clock/advance", json={"seconds": 5})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "Conflict"


async def test_clock_skew_moves_the_date_header(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/clock/skew", json={"seconds": 90})
    response = await client.get("/_sim/health")
    assert response.headers["date"] == "Mon, 05 Jan 2026 08:01:30 GMT"
    assert (await client.get("/_sim/clock")).json()["date_skew_s"] == 90


async def test_user_edits_show_up_in_graph(client: httpx.AsyncClient, sim: Simulator) -> None:
    headers = bearer(app_token(sim, ["User.Read.All"]))
    created = await client.post("/_sim/tenants/contoso.com/users", json={
        "userPrincipalName": "nora@contoso.com", "displayName": "Nora Nowak",
        "businessPhones": ["+49 30 5550299"], "teams": False})
    assert created.status_code == 201
    assert created.json()["assignedPlans"] == []
    graph = (await client.get("/v1.0/users/nora@contoso.com?$select=displayName,businessPhones",
                              headers=headers)).json()
    assert graph["displayName"] == "Nora Nowak" and graph["businessPhones"] == ["+49 30 5550299"]
    patched = await client.patch("/_sim/tenants/contoso.com/users/nora@contoso.com",
                                 json={"accountEnabled": False, "jobTitle": "Buyer"})
    assert patched.status_code == 200 and patched.json()["accountEnabled"] is False
    renamed = await client.patch("/_sim/tenants/contoso.com/users/nora@contoso.com",
                                 json={"userPrincipalName": "nora.nowak@contoso.com"})
    assert renamed.json()["userPrincipalName"] == "nora.nowak@contoso.com"
    assert (await client.get("/v1.0/users/nora.nowak@contoso.com",
                             headers=headers)).status_code == 200
    assert (await client.get("/v1.0/users/nora@contoso.com",
                             headers=headers)).status_code == 404
    deleted = await client.delete("/_sim/tenants/contoso.com/users/nora.nowak@contoso.com")
    assert deleted.status_code == 204
    assert (await client.get("/v1.0/users/nora.nowak@contoso.com",
                             headers=headers)).status_code == 404


async def test_bad_user_edits_change_nothing(client: httpx.AsyncClient, sim: Simulator) -> None:
    base = "/_sim/tenants/contoso.com/users"
    assert (await client.post(base, json={"displayName": "No UPN"})).status_code == 400
    assert (await client.post(base, json={"userPrincipalName": "x@elsewhere.example"})
            ).status_code == 400
    assert (await client.post(base, json={"userPrincipalName": "ANNA@contoso.com"})
            ).status_code == 400
    assert (await client.patch(f"{base}/ghost@contoso.com", json={})).status_code == 404
    before = (await client.get(f"{base}/anna@contoso.com")).json()
    for body in ({"shoeSize": 42}, {"accountEnabled": "no"},
                 {"jobTitle": "Boss", "userPrincipalName": "ben@contoso.com"}):
        response = await client.patch(f"{base}/anna@contoso.com", json=body)
        assert response.status_code == 400, body
    assert (await client.get(f"{base}/anna@contoso.com")).json() == before


async def test_the_control_api_lists_a_tenants_users_without_the_deleted(
        client: httpx.AsyncClient) -> None:
    base = "/_sim/tenants/contoso.com/users"
    created = await client.post(base, json={"userPrincipalName": "lena@contoso.com",
                                            "displayName": "Lena Lind"})
    assert created.status_code == 201
    listed = (await client.get(base)).json()
    upns = {u["userPrincipalName"] for u in listed["value"]}
    assert "lena@contoso.com" in upns and listed["count"] == len(listed["value"])
    assert (await client.delete(f"{base}/lena@contoso.com")).status_code == 204
    after = (await client.get(base)).json()
    assert "lena@contoso.com" not in {u["userPrincipalName"] for u in after["value"]}
    assert after["count"] == listed["count"] - 1
    assert (await client.get("/_sim/tenants/nowhere.example/users")).status_code == 404
