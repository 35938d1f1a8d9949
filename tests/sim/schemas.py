"""JSON Schema validators and recorded payloads from ../shared (graph-schema, fixtures/graph)."""

from __future__ import annotations

import json
import os
import pathlib
import urllib.parse
import urllib.request
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


def _shared() -> pathlib.Path:
    """../shared beside the project (or $M365_SHARED_DIR)."""
    if os.environ.get("M365_SHARED_DIR"):
        return pathlib.Path(os.environ["M365_SHARED_DIR"])
    for folder in pathlib.Path(__file__).resolve().parents:
        if (folder / "shared" / "graph-schema").is_dir():
            return folder / "shared"
    # Not found: point where it would be; tests marked `needs_shared` skip, others fail.
    return pathlib.Path(__file__).resolve().parents[3] / "shared"


SHARED = _shared()
SCHEMAS = SHARED / "graph-schema"
FIXTURES = SHARED / "fixtures" / "graph"


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
    """A recorded payload from ../shared/fixtures/graph."""
    return json.loads((FIXTURES / name).read_text())
