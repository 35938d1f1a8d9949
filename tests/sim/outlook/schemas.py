"""Validation of the simulator's answers against the shared Graph schemas and fixtures."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SHARED = Path(__file__).resolve().parents[4] / "shared"
SCHEMAS = SHARED / "graph-schema"
FIXTURES = SHARED / "fixtures" / "graph"

needs_shared = pytest.mark.skipif(not SCHEMAS.is_dir(),
                                  reason=f"Graph schemas not found at {SCHEMAS}")


def _retrieve(uri: str) -> Resource[Any]:
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(uri).path))
    return Resource.from_contents(json.loads(path.read_text()),
                                  default_specification=DRAFT202012)


@cache
def validator(relative: str) -> Draft202012Validator:
    """A validator for one schema file, e.g. 'types/event.json'."""
    return Draft202012Validator({"$ref": (SCHEMAS / relative).as_uri()},
                                registry=Registry(retrieve=_retrieve),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_collection(body: dict[str, Any], item_schema: str) -> None:
    """The collection wrapper, then every item against its type."""
    validator("types/collection.json").validate(body)
    for item in body["value"]:
        validator(item_schema).validate(item)


def fixture(name: str) -> Any:
    """A payload from the shared fixtures."""
    return json.loads((FIXTURES / name).read_text())


def shape(value: Any) -> Any:
    """A value's structure (keys and JSON types), for comparing with a fixture."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__
