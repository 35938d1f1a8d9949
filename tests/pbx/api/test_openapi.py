"""The OpenAPI document describes every route, its scope, its bodies and its errors."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def test_every_route_says_its_scope_and_errors(app: FastAPI) -> None:
    document = app.openapi()
    expected = {
        ("get", "/api/v1/people"): "read",
        ("get", "/api/v1/people/{key}"): "read",
        ("get", "/api/v1/presence"): "read",
        ("post", "/api/v1/connections/{name}/events"): "write",
        ("put", "/api/v1/connections/{name}/users"): "write",
    }
    found = {
        (method, path): operation["x-required-scope"]
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    assert found == expected
    for method, path in expected:
        operation = _operation(document, method, path)
        assert {"401", "403", "422"} <= set(operation["responses"])
        assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        assert operation["security"] == [{"HTTPBearer": []}]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_bodies_and_answers_have_schemas(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    events = _operation(document, "post", "/api/v1/connections/{name}/events")
    body = events["requestBody"]["content"]["application/json"]["schema"]
    assert body["items"] == {"$ref": "#/components/schemas/EventIn"}
    assert body["maxItems"] == 1000
    assert "202" in events["responses"] and "503" in events["responses"]
    event = schemas["EventIn"]
    assert set(event["properties"]) == {"key", "line_state", "presence", "note", "sequence", "at"}
    assert schemas["LineState"]["enum"] == ["idle", "ringing", "on-the-phone", "held"]
    assert "dnd" in schemas["PbxPresence"]["enum"]
    person = schemas["PersonOut"]["properties"]
    assert {"teams", "pbx", "line_state", "pbx_set_by_person", "session"} <= set(person)
    user = schemas["UserIn"]
    # Every field is text of limited length (issue 18 §7), the display name shorter still.
    assert user["additionalProperties"] == {"type": "string", "maxLength": 1024}
    assert user["properties"]["cn"]["anyOf"][0]["maxLength"] == 256
    users = _operation(document, "put", "/api/v1/connections/{name}/users")
    assert users["x-max-body-bytes"] == 16 * 1024 * 1024
    assert events["x-max-body-bytes"] == 2 * 1024 * 1024
    assert "413" in users["responses"]
