"""POST /v1.0/$batch: envelope rules, dependsOn, per-request throttling (graph.md 5)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from m365sim.model import Tenant
from m365sim.simulator import Simulator
from tests.sim.conftest import APP_ID, app_token, bearer
from tests.sim.directory.schemas import FIXTURES, check_error, validator


@pytest.fixture
def headers(sim: Simulator) -> dict[str, str]:
    return bearer(app_token(sim, ["User.Read.All", "Presence.ReadWrite.All"]))


def get(step_id: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "method": "GET", "url": url, **extra}


async def test_the_documented_batch_runs_each_request_and_keeps_its_shape(
    client: httpx.AsyncClient, headers: dict[str, str], tenant: Tenant
) -> None:
    anna = tenant.find_user("anna@contoso.com")
    assert anna is not None
    text = (FIXTURES / "batch.request.json").read_text()
    text = text.replace("fa8bf3dc-eca7-46b7-bad1-db199b62afc3", anna.id)
    text = text.replace("22553876-f5ab-4529-bffb-cfe50aa89f87", APP_ID)
    response = await client.post("/v1.0/$batch", headers=headers, json=json.loads(text))
    assert response.status_code == 200
    answers = {item["id"]: item for item in response.json()["responses"]}
    expected = json.loads((FIXTURES / "batch.response.json").read_text())["responses"]
    assert all(set(item) == set(expected[0]) for item in answers.values())
    assert answers["1"]["status"] == 200
    validator("types/presence.json").validate(answers["1"]["body"])
    assert answers["2"]["status"] == 200
    assert answers["2"]["body"]["@odata.count"] == 4  # ConsistencyLevel inside the batch
    assert answers["2"]["headers"]["Content-Type"].startswith("application/json")
    assert answers["3"]["status"] == 200


async def test_at_most_twenty_requests_with_unique_ids(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    twenty = [get(str(n), "/users?$top=1&$select=id") for n in range(20)]
    ok = await client.post("/v1.0/$batch", headers=headers, json={"requests": twenty})
    assert ok.status_code == 200 and len(ok.json()["responses"]) == 20
    too_many = await client.post("/v1.0/$batch", headers=headers,
                                 json={"requests": [*twenty, get("20", "/users")]})
    assert too_many.status_code == 400
    check_error(too_many.json())
    twins = await client.post("/v1.0/$batch", headers=headers,
                              json={"requests": [get("a", "/users"), get("A", "/groups")]})
    assert twins.status_code == 400


@pytest.mark.parametrize("requests", [
    [get("1", "https://graph.microsoft.com/v1.0/users")],
    [{"id": "1", "method": "POST", "url": "/users/x/presence/clearPresence", "body": {}}],
    [{"id": "1", "method": "POST", "url": "/x", "body": {}, "headers": {"Accept": "x"}}],
    [get("1", "/users", dependsOn=["9"])],
    [get("1", "/users", dependsOn=["2"]), get("2", "/users", dependsOn=["1"])],
    [{"id": "1", "method": "BREW", "url": "/users"}],
    [{"method": "GET", "url": "/users"}],
    [],
])
async def test_malformed_envelopes_are_refused_whole(
    client: httpx.AsyncClient, headers: dict[str, str], requests: list[Any]
) -> None:
    response = await client.post("/v1.0/$batch", headers=headers, json={"requests": requests})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


async def test_a_body_without_content_type_gets_graphs_message(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1.0/$batch", headers=headers, json={"requests": [
        {"id": "7", "method": "POST", "url": "/communications/getPresencesByUserId",
         "body": {"ids": []}}]})
    assert response.json()["error"]["message"] == \
        "Write request id : 7 does not contain Content-Type header or body."


async def test_unreadable_payloads_and_missing_tokens(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    broken = await client.post("/v1.0/$batch", headers={**headers,
                                                        "Content-Type": "application/json"},
                               content=b"{requests: ")
    assert broken.status_code == 400
    assert broken.json()["error"]["message"].startswith("Unable to read JSON request payload.")
    text = await client.post("/v1.0/$batch", headers={**headers, "Content-Type": "text/plain"},
                             content=b'{"requests": []}')
    assert text.status_code == 400
    anonymous = await client.post("/v1.0/$batch", json={"requests": [get("1", "/users")]})
    assert anonymous.status_code == 401


async def test_failed_dependencies_fail_their_dependents_with_424(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/v1.0/$batch", headers=headers, json={"requests": [
        get("1", "/users/nobody@contoso.com"),
        get("2", "/users?$top=1", dependsOn=["1"]),
        get("3", "/groups", dependsOn=["2"]),
        get("4", "users?$top=1"),
    ]})
    statuses = {item["id"]: item["status"] for item in response.json()["responses"]}
    assert statuses == {"1": 404, "2": 424, "3": 424, "4": 200}
    failed = next(i for i in response.json()["responses"] if i["id"] == "2")
    check_error(failed["body"])


async def test_inner_requests_are_throttled_one_by_one_with_their_own_retry_after(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    await client.put("/_sim/limits", json={"directory": {"requests": 2, "window_s": 20}})
    response = await client.post("/v1.0/$batch", headers=headers, json={"requests": [
        get(str(n), "/users?$top=1") for n in range(4)]})
    assert response.status_code == 200
    items = response.json()["responses"]
    assert sorted(item["status"] for item in items) == [200, 200, 429, 429]
    for item in items:
        if item["status"] == 429:
            assert item["headers"]["Retry-After"] == "20"
            assert item["body"]["error"]["code"] == "TooManyRequests"
    log = (await client.get("/_sim/requests")).json()["requests"]
    assert [r["batch"] for r in log if r["path"] == "/v1.0/users"] == [True] * 4
    assert [r["path"] for r in log].count("/v1.0/$batch") == 1
