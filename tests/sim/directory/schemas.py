"""JSON Schema validators and fixtures from ../shared (graph-schema, fixtures/graph)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def _shared() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "graph-schema").is_dir():
            return folder / "shared"
    raise RuntimeError("../shared (graph-schema, fixtures) not found beside the project")


SHARED = _shared()
SCHEMAS = SHARED / "graph-schema"
FIXTURES = SHARED / "fixtures" / "graph"


def _retrieve(uri: str) -> Resource[Any]:
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(uri).path))
    return Resource.from_contents(json.loads(path.read_text()),
                                  default_specification=DRAFT202012)


@cache
def validator(relative: str) -> Draft202012Validator:
    """A validator for one schema file, e.g. 'types/user.json'."""
    return Draft202012Validator({"$ref": (SCHEMAS / relative).as_uri()},
                                registry=Registry(retrieve=_retrieve),  # type: ignore[call-arg]
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def fixture(name: str) -> Any:
    """A fixture payload from fixtures/graph."""
    return json.loads((FIXTURES / name).read_text())


def check_user_collection(body: dict[str, Any], *, strict: bool = False) -> None:
    """Validate a users collection answer: the wrapper and each user."""
    validator("types/collection.json").validate(body)
    item = validator("types-strict/user.json" if strict else "types/user.json")
    for user in body["value"]:
        item.validate(user)


def check_error(body: dict[str, Any]) -> None:
    """Validate a Graph error body."""
    validator("types/odata-error.json").validate(body)
