"""Turn pydantic's validation errors into Problems a person can act on, with secrets hidden."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from m365pbx.config.errors import KeyPath, Problem
from m365pbx.config.mapping import MAPPING_ERROR_TYPE
from m365pbx.config.redact import mask_url_password
from m365pbx.config.references import REFERENCE_ERROR_TYPE
from m365pbx.config.secrets import MASK, is_secret_key, looks_like_secret

Locate = Callable[[KeyPath, str], Problem]
"""Makes a Problem for a key path: adds the file and line, or the environment variable."""

_PREFIXES = ("Value error, ", "Assertion failed, ")
_OWN_WORDS = frozenset({"value_error", "assertion_error"})
_LISTS_CHOICES = frozenset({"literal_error", "enum"})  # pydantic's message lists the choices
_MAPPING_EXPECTED = frozenset({"model_type", "model_attributes_type", "dict_type"})
_MAPPING_PROBLEM = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): (.+)$", re.DOTALL)
_PATH_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_]\w*)")

_SHOWN_LENGTH = 60


@dataclass(frozen=True, slots=True)
class _Step:
    """One key of a path: the model that holds it (if any), its field, and the value's type."""

    model: type[BaseModel] | None
    field: FieldInfo | None
    value_type: Any


def explain(
    error: ValidationError,
    root: type[BaseModel],
    data: Any,
    locate: Locate,
    *,
    references_reported: bool = False,
) -> list[Problem]:
    """Return one Problem per validation error (several for a bad mapping document).

    `references_reported`: the caller already reported reference problems found in the raw
    data, so the root model's own reference check would only repeat them.
    """
    problems: list[Problem] = []
    for detail in error.errors(include_url=False):
        if detail["type"] == REFERENCE_ERROR_TYPE:
            if not references_reported:
                context = detail.get("ctx") or {}
                problems.extend(locate(p, m) for p, m in context.get("problems", []))
            continue
        path = clean_location(detail["loc"], root, data)
        problems.extend(_explain_one(detail, path, root, data, locate))
    return problems


def clean_location(loc: tuple[str | int, ...], root: type[BaseModel], data: Any) -> KeyPath:
    """Drop the union tags pydantic puts in locations (`pbx_connections.0.sip.settings`)."""
    path: list[str | int] = []
    current: Any = root
    node = data
    for part in loc:
        members = _tagged_members(current)
        if isinstance(part, str) and part in members:
            current = members[part]
            continue
        path.append(part)
        step = _step(current, node, part)
        current, node = step.value_type, _child(node, part)
    return tuple(path)


def walk(path: KeyPath, root: type[BaseModel], data: Any) -> list[_Step]:
    """Follow a key path through the models, choosing union members by the data's `kind`."""
    steps = []
    current: Any = root
    node = data
    for part in path:
        step = _step(current, node, part)
        steps.append(step)
        current, node = step.value_type, _child(node, part)
    return steps


def _explain_one(
    detail: ErrorDetails, path: KeyPath, root: type[BaseModel], data: Any, locate: Locate
) -> Iterator[Problem]:
    kind = detail["type"]
    steps = walk(path, root, data)
    last = steps[-1] if steps else _Step(root, None, root)
    value = detail.get("input")
    context = detail.get("ctx") or {}
    if kind == MAPPING_ERROR_TYPE:
        yield from _mapping_problems(path, context.get("problems", []), locate)
    elif kind == "extra_forbidden":
        allowed = sorted(last.model.model_fields) if last.model else []
        key = str(path[-1]) if path else ""
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        yield locate(path, f"unknown key {key!r}{hint}{listed}")
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        yield _explain_kind(path, value, locate, root, data)
    elif kind == "missing":
        yield locate(path, "required, but missing" + _expected(last))
    else:
        message = _clean_message(detail["msg"], lowercase=kind not in _OWN_WORDS)
        if kind in _MAPPING_EXPECTED:
            message = "expected a mapping (key: value lines)"
        # A whole section or list as "got ..." only helps when its type is the problem.
        container = isinstance(value, Mapping | list)
        shown = "" if container and not kind.endswith("_type") else _shown(value, path, last)
        said = kind in _OWN_WORDS or kind in _LISTS_CHOICES or kind in _MAPPING_EXPECTED
        expected = "" if said else _expected(last)
        yield locate(path, message + shown + expected)


def _explain_kind(
    path: KeyPath, value: Any, locate: Locate, root: type[BaseModel], data: Any
) -> Problem:
    parent = walk(path, root, data)[-1].value_type if path else root
    tags = sorted(_tagged_members(parent))
    expected = ", ".join(tags)
    if not isinstance(value, Mapping):
        return locate(path, f"expected a mapping with a kind ({expected}){_shown(value, path)}")
    tag = value.get("kind")
    if tag is None:
        return locate((*path, "kind"), f"required, but missing; expected one of: {expected}")
    close = difflib.get_close_matches(str(tag), tags, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return locate((*path, "kind"), f"unknown kind {tag!r}{hint}; expected one of: {expected}")


def _mapping_problems(path: KeyPath, problems: list[str], locate: Locate) -> Iterator[Problem]:
    for text in problems:
        match = _MAPPING_PROBLEM.match(text)
        if match is None:
            yield locate(path, text)
            continue
        inner: list[str | int] = [
            int(index) if index else name for index, name in _PATH_PART.findall(match.group(1))
        ]
        if inner and inner[0] == "mapping":  # the mapping module names the document "mapping"
            inner = inner[1:]
        yield locate((*path, *inner), match.group(2))


def _expected(step: _Step) -> str:
    description = step.field.description if step.field is not None else None
    return f" (expected: {description})" if description else ""


def _shown(value: Any, path: KeyPath, step: _Step | None = None) -> str:
    if value is None:
        return ""
    secret_type = step is not None and _unwrap(step.value_type, None) is SecretStr
    if isinstance(value, SecretStr) or secret_type or any(map(is_secret_key, path)):
        return f"; got {MASK} (hidden: it may be a secret)"
    if isinstance(value, Mapping):
        return "; got a mapping"
    if isinstance(value, list | tuple):
        return "; got a list"
    if looks_like_secret(value):
        return f"; got {MASK} (hidden: it looks like a secret)"
    if isinstance(value, str):
        text = mask_url_password(value)
        if len(text) > _SHOWN_LENGTH:
            text = text[:_SHOWN_LENGTH] + "…"
        return f"; got {text!r}"
    return f"; got {value!r}"


def _clean_message(message: str, *, lowercase: bool) -> str:
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:] if lowercase else message


def _child(node: Any, part: str | int) -> Any:
    if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
        return node[part]
    if isinstance(node, Mapping):
        return node.get(part)
    return None


def _step(current: Any, node: Any, part: str | int) -> _Step:
    resolved = _unwrap(current, node)
    if isinstance(part, int):
        origin = get_origin(resolved)
        element = get_args(resolved)[0] if origin in (list, tuple) and get_args(resolved) else Any
        return _Step(None, None, element)
    if isinstance(resolved, type) and issubclass(resolved, BaseModel):
        info = resolved.model_fields.get(part)
        return _Step(resolved, info, info.annotation if info is not None else Any)
    if get_origin(resolved) is dict and len(get_args(resolved)) == 2:
        return _Step(None, None, get_args(resolved)[1])
    return _Step(None, None, Any)


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated and Optional; pick a union member by the data's `kind`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
            tagged = _tagged_members(annotation)
            kind = node.get("kind") if isinstance(node, Mapping) else None
            if isinstance(kind, str) and kind in tagged:
                annotation = tagged[kind]
                continue
        return annotation


def _tagged_members(annotation: Any) -> dict[str, type[BaseModel]]:
    """Map each `kind` value to its model for a union of models told apart by `kind`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    members: dict[str, type[BaseModel]] = {}
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel) and "kind" in arg.model_fields:
            for tag in get_args(arg.model_fields["kind"].annotation):
                members[str(tag)] = arg
    return members
