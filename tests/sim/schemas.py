"""JSON Schema validators and recorded payloads from tests/fixtures (graph-schema, graph)."""

from __future__ import annotations

import json
import pathlib
import urllib.parse
import urllib.request
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FIXTURE_ROOT = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
SCHEMAS = FIXTURE_ROOT / "graph-schema"
FIXTURES = FIXTURE_ROOT / "graph"


def _retrieve(uri: str) -> Resource[Any]:
    path = pathlib.Path(urllib.request.url2pathname(urllib.parse.urlparse(uri).path))
    return Resource.from_contents(json.loads(path.read_text()),
                                  default_specification=DRAFT202012)


@cache
def validator(relative: str) -> Draft202012Validator:
    """A validator for e.g. "types/presence.json" or "actions/setPresence.request.json"."""
    return Draft202012Validator({"$ref": (SCHEMAS / relative).as_uri()},
                                registry=Registry(retrieve=_retrieve),  # type: ignore[call-arg]
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def fixture(name: str) -> Any:
    """A recorded payload from tests/fixtures/graph."""
    return json.loads((FIXTURES / name).read_text())
