"""Malformed requests to the token endpoint get Entra's errors, never a traceback."""

from __future__ import annotations

import base64

import httpx

from tests.sim.conftest import APP_ID, APP_SECRET, TENANT_ID
from tests.sim.entra.conftest import GRAPH_DEFAULT, assert_aad_error, token

URL = f"/{TENANT_ID}/oauth2/v2.0/token"


async def test_json_body_is_read_as_no_parameters(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"grant_type": "client_credentials",
                                            "client_id": APP_ID})
    body = assert_aad_error(response, "invalid_request", 900144)
    assert "'grant_type'" in body["error_description"]


async def test_missing_content_type_is_read_as_no_parameters(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"grant_type=client_credentials")
    assert_aad_error(response, "invalid_request", 900144)


async def test_unknown_grant_type_is_unsupported_grant_type(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="authorization_code_please",
                           client_id=APP_ID)
    body = assert_aad_error(response, "unsupported_grant_type", 70003)
    assert "authorization_code_please" in body["error_description"]


async def test_missing_client_id_is_900144(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="client_credentials",
                           scope=GRAPH_DEFAULT)
    body = assert_aad_error(response, "invalid_request", 900144)
    assert "'client_id'" in body["error_description"]


async def test_repeated_parameter_is_a_malformed_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b"grant_type=client_credentials&grant_type=password",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_aad_error(response, "invalid_request", 9002313)


async def test_body_that_is_not_utf8_is_a_malformed_request(client: httpx.AsyncClient) -> None:
    for raw in (b"grant_type=client_credentials&client_secret=%FF%FE",
                b"grant_type=\xff\xfe"):
        response = await client.post(
            URL, content=raw,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        assert_aad_error(response, "invalid_request", 9002313)


async def test_get_on_the_token_endpoint_is_900561(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    body = assert_aad_error(response, "invalid_request", 900561)
    assert "GET" in body["error_description"]


async def test_broken_basic_header_is_invalid_client(client: httpx.AsyncClient) -> None:
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        response = await client.post(URL, data={"grant_type": "client_credentials",
                                                "scope": GRAPH_DEFAULT},
                                     headers={"Authorization": header})
        assert_aad_error(response, "invalid_client", 9002313, status=401)


async def test_secret_in_body_and_header_is_refused(client: httpx.AsyncClient) -> None:
    pair = base64.b64encode(f"{APP_ID}:{APP_SECRET}".encode()).decode()
    response = await client.post(URL, data={"grant_type": "client_credentials",
                                            "client_secret": APP_SECRET, "scope": GRAPH_DEFAULT},
                                 headers={"Authorization": f"Basic {pair}"})
    assert_aad_error(response, "invalid_request", 9002313)


async def test_secret_and_assertion_together_are_refused(client: httpx.AsyncClient) -> None:
    response = await token(
        client, TENANT_ID, grant_type="client_credentials", client_id=APP_ID,
        client_secret=APP_SECRET, scope=GRAPH_DEFAULT, client_assertion="a.b.c",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    assert_aad_error(response, "invalid_request", 9002313)


async def test_oversized_body_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"a=" + b"x" * (1 << 20),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_aad_error(response, "invalid_request", 9002313)


async def test_error_answers_are_json_with_entras_headers(client: httpx.AsyncClient) -> None:
    response = await token(client, TENANT_ID, grant_type="nope")
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-ms-request-id"] == response.json()["trace_id"]
