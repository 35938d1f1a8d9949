"""Throttling by Graph's limits, injected faults, and the request log (graph.md 5)."""

from __future__ import annotations

import httpx
import pytest

from m365sim.clock import VirtualClock
from m365sim.faults import bucket_of
from m365sim.model import AppRegistration, Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer


def check_graph_error(body: dict[str, object], code: str) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code
    assert {"date", "request-id", "client-request-id"} <= set(error["innerError"])
    return error


@pytest.mark.parametrize(("method", "path", "bucket"), [
    ("GET", "/v1.0/users/abc/presence", "presence-read"),
    ("GET", "/v1.0/me/presence", "presence-read"),
    ("GET", "/v1.0/communications/presences/abc", "presence-read"),
    ("POST", "/v1.0/communications/getPresencesByUserId", "presence-read"),
    ("POST", "/v1.0/users/abc/presence/setPresence", "presence-write"),
    ("GET", "/v1.0/users", "directory"),
    ("GET", "/v1.0/users/delta", "directory"),
    ("GET", "/v1.0/users/abc/calendarView", "calendar"),
    ("GET", "/v1.0/me/contacts", "contacts"),
    ("PATCH", "/v1.0/subscriptions/abc", "subscriptions"),
    ("POST", "/v1.0/$batch", None),
    ("POST", "/contoso.com/oauth2/v2.0/token", None),
])
def test_requests_are_sorted_into_limit_buckets(method: str, path: str,
                                                bucket: str | None) -> None:
    assert bucket_of(method, path) == bucket


async def test_presence_reads_share_1500_requests_per_30_seconds_per_app_and_tenant(
    client: httpx.AsyncClient, sim: Simulator, tenant: Tenant, clock: VirtualClock
) -> None:
    headers = bearer(app_token(sim, ["Presence.Read.All", "User.Read.All"]))
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    for index in range(1500):
        if index % 2:
            response = await client.get(f"/v1.0/users/{anna.id}/presence", headers=headers)
        else:
            response = await client.post("/v1.0/communications/getPresencesByUserId",
                                         headers=headers, json={"ids": [anna.id]})
        assert response.status_code != 429, index
    throttled = await client.get(f"/v1.0/users/{anna.id}/presence", headers=headers)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "30"
    error = check_graph_error(throttled.json(), "TooManyRequests")
    assert error["message"] == "Please retry again later."
    assert error["innerError"]["code"] == "429"  # type: ignore[index]
    # Other buckets and other apps are not affected.
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    other = AppRegistration(app_id="0f0f0f0f-1111-4222-8333-444444444444", display_name="other",
                            application_roles={"Presence.Read.All"})
    tenant.apps[other.app_id] = other
    other_headers = bearer(app_token(sim, ["Presence.Read.All"], app_id=other.app_id))
    assert (await client.get(f"/v1.0/users/{anna.id}/presence",
                             headers=other_headers)).status_code == 200
    await clock.advance(30)
    assert (await client.get(f"/v1.0/users/{anna.id}/presence",
                             headers=headers)).status_code == 200


async def test_scenario_limits_throttle_other_buckets_on_a_sliding_window(
    client: httpx.AsyncClient, sim: Simulator, clock: VirtualClock
) -> None:
    headers = bearer(app_token(sim, ["User.Read.All"]))
    set_limit = await client.put("/_sim/limits",
                                 json={"directory": {"requests": 2, "window_s": 10}})
    assert set_limit.status_code == 200
    assert set_limit.json()["limits"]["directory"] == {"requests": 2, "window_s": 10.0}
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    await clock.advance(4)
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    refused = await client.get("/v1.0/users", headers=headers)
    assert refused.status_code == 429 and refused.headers["retry-after"] == "6"
    await clock.advance(3)
    # Refused requests do not count: the first request still leaves the window at t=10.
    assert (await client.get("/v1.0/users", headers=headers)).headers["retry-after"] == "3"
    await clock.advance(3)
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    lifted = await client.put("/_sim/limits", json={"directory": None})
    assert "directory" not in lifted.json()["limits"]
    bad = await client.put("/_sim/limits", json={"nowhere": {"requests": 1, "window_s": 1}})
    assert bad.status_code == 400


async def test_injected_faults_answer_with_graphs_bodies_then_stop(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    headers = bearer(app_token(sim, ["User.Read.All"]))
    created = await client.post("/_sim/faults", json={"status": 503, "count": 2,
                                                      "retry_after_s": 7,
                                                      "path_prefix": "/v1.0/users"})
    assert created.status_code == 201
    assert (await client.get("/_sim/faults")).json()["faults"][0]["id"] == created.json()["id"]
    for _ in range(2):
        failed = await client.get("/v1.0/users", headers=headers)
        assert failed.status_code == 503 and failed.headers["retry-after"] == "7"
        check_graph_error(failed.json(), "serviceNotAvailable")
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    assert (await client.get("/_sim/faults")).json()["faults"] == []

    await client.post("/_sim/faults", json={"status": 504, "method": "POST"})
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200
    timeout = await client.post("/v1.0/communications/getPresencesByUserId", headers=headers,
                                json={"ids": []})
    assert timeout.status_code == 504
    assert check_graph_error(timeout.json(), "UnknownError")["message"] == ""
    assert (await client.get("/_sim/health")).status_code == 200  # control is never failed
    assert (await client.delete("/_sim/faults")).status_code == 204

    await client.post("/_sim/faults", json={"status": 429, "rate": 1.0, "retry_after_s": 2})
    throttled = await client.get("/v1.0/users", headers={**headers,
                                                         "client-request-id": "my-id-1"})
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    assert throttled.headers["client-request-id"] == "my-id-1"
    assert throttled.json()["error"]["innerError"]["client-request-id"] == "my-id-1"
    await client.delete("/_sim/faults")
    await client.post("/_sim/faults", json={"status": 500, "rate": 0.0})
    assert (await client.get("/v1.0/users", headers=headers)).status_code == 200


@pytest.mark.parametrize("body", [
    {"status": 418}, {"status": "503"}, {"status": 503, "rate": 2}, {"status": 503, "count": 0},
    {"status": 503, "path_prefix": "users"}, {"status": 503, "colour": "red"},
])
async def test_nonsense_faults_are_refused(client: httpx.AsyncClient,
                                           body: dict[str, object]) -> None:
    response = await client.post("/_sim/faults", json=body)
    assert response.status_code == 400
    check_graph_error(response.json(), "BadRequest")


async def test_the_request_log_names_method_path_status_app_and_outcome(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    headers = bearer(app_token(sim, ["User.Read.All"]))
    await client.get("/v1.0/users?$top=1", headers=headers)
    await client.post("/_sim/faults", json={"status": 503, "count": 1})
    await client.get("/v1.0/groups", headers=headers)
    await client.get("/v1.0/users")
    log = (await client.get("/_sim/requests?limit=3")).json()["requests"]
    assert [(r["method"], r["path"], r["status"], r["outcome"]) for r in log] == [
        ("GET", "/v1.0/users", 200, "ok"), ("GET", "/v1.0/groups", 503, "fault"),
        ("GET", "/v1.0/users", 401, "ok")]
    assert log[0]["app"] == "6731de76-14a6-49ae-97bc-6eba6914391e"
    assert log[0]["query"] == "$top=1" and log[0]["bucket"] == "directory"
    assert log[2]["app"] is None
    assert (await client.delete("/_sim/requests")).status_code == 204
    assert (await client.get("/_sim/requests")).json()["requests"] == []


async def test_skewed_date_header_is_on_throttling_answers_too(
    client: httpx.AsyncClient, sim: Simulator
) -> None:
    await client.post("/_sim/clock/skew", json={"seconds": -3600})
    await client.post("/_sim/faults", json={"status": 429, "count": 1})
    response = await client.get("/v1.0/users", headers=bearer(app_token(sim)))
    assert response.status_code == 429
    assert response.headers["date"] == "Mon, 05 Jan 2026 07:00:00 GMT"
