"""docs/configuration.md and the configuration models name the same keys with the same
defaults: each key the reference tables name exists, and each model field is documented.
"""

from __future__ import annotations

import re
import types
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from m365pbx.config import Settings
from m365pbx.config.connections import (
    ApiConnection,
    ApiSettings,
    AsteriskConnection,
    AsteriskSettings,
    PersonSwitches,
    SipConnection,
    SipSettings,
)
from m365pbx.config.durations import parse_duration
from m365pbx.config.tenants import Credential, ServiceAccount, Tenant

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# Which model each reference table describes, by the heading or sentence above it.
TABLES: dict[str, type[BaseModel]] = {
    "### Installation": Settings,
    "### `tenants` (list)": Tenant,
    "#### `tenants[].credentials` (list)": Credential,
    "#### `tenants[].service_accounts` (list)": ServiceAccount,
    "### `pbx_connections` (list)": SipConnection,
    "`settings` for `kind: sip`": SipSettings,
    "`settings` for `kind: asterisk`": AsteriskSettings,
}
# Keys with their own table (or section) instead of a row in their parent's.
OWN_TABLE: dict[type[BaseModel], set[str]] = {Settings: {"tenants", "pbx_connections"}}
NOT_EXPANDED = {"settings"}  # documented in the per-kind tables


def reference_tables() -> dict[str, list[list[str]]]:
    """The rows (cells, backticks kept) of each reference table, by the line naming it."""
    lines = DOC.read_text(encoding="utf-8").split("\n")
    start = lines.index("## Reference")
    tables: dict[str, list[list[str]]] = {}
    context = ""
    rows: list[list[str]] | None = None
    for line in lines[start:]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if rows is None:
                assert cells[0] == "key", f"a table under {context!r} has no 'key' column"
                rows = tables.setdefault(context, [])
            elif not set(line) <= set("|- "):
                rows.append(cells)
            continue
        rows = None
        if line.startswith("#") or line.startswith("`settings` for"):
            context = next((name for name in TABLES if line.startswith(name)), line)
    return tables


def unwrap(annotation: Any) -> Any:
    """The type inside Optional[...] / Annotated[...]."""
    while True:
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        elif origin is not None and hasattr(annotation, "__metadata__"):
            annotation = get_args(annotation)[0]
        else:
            return annotation


def model_keys(model: type[BaseModel], prefix: str = "") -> dict[str, FieldInfo]:
    """Every documented key of a model: nested sections become dotted keys."""
    keys: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        if name in OWN_TABLE.get(model, set()):
            continue
        inner = unwrap(field.annotation)
        if (isinstance(inner, type) and issubclass(inner, BaseModel)
                and name not in NOT_EXPANDED and inner.model_fields):
            keys.update(model_keys(inner, f"{prefix}{name}."))
        else:
            keys[prefix + name] = field
    return keys


def default_matches(text: str, field: FieldInfo) -> bool:
    """Whether the table's default column says what the model's default is."""
    text = text.strip()
    if text == "see below":  # the kind-specific tables give the defaults
        return True
    if text == "—":
        return field.is_required()
    if field.is_required():
        return False
    default = field.get_default(call_default_factory=True)
    if text == "none":
        return default is None
    code = re.fullmatch(r"`([^`]*)`", text)
    if code is None:
        return False
    value = code.group(1)
    if isinstance(default, bool):
        return value == str(default).lower()
    if isinstance(default, timedelta):
        return parse_duration(value) == default
    if isinstance(default, Enum):
        return str(default.value).casefold() == value.casefold()
    if isinstance(default, list):
        return value == "[" + ", ".join(str(item) for item in default) + "]"
    if isinstance(default, int):
        return value == str(default)
    if isinstance(default, str) and value.casefold() == default.casefold():
        return True
    return str(default).rstrip("/") == value


TABLE_ROWS = reference_tables()


def test_every_model_has_its_table() -> None:
    assert set(TABLES) <= set(TABLE_ROWS), set(TABLES) - set(TABLE_ROWS)


@pytest.mark.parametrize("heading", list(TABLES))
def test_the_table_names_exactly_the_models_keys(heading: str) -> None:
    documented = [re.sub(r"`", "", row[0]) for row in TABLE_ROWS[heading]]
    assert len(documented) == len(set(documented)), f"a key is documented twice: {documented}"
    keys = model_keys(TABLES[heading])
    assert sorted(set(documented) - set(keys)) == [], "documented, but no such key"
    assert sorted(set(keys) - set(documented)) == [], "a key the documentation does not name"


@pytest.mark.parametrize("heading", list(TABLES))
def test_the_table_gives_the_models_defaults(heading: str) -> None:
    keys = model_keys(TABLES[heading])
    wrong = [(row[0], row[2]) for row in TABLE_ROWS[heading]
             if row[0].strip("`") in keys and not default_matches(row[2], keys[row[0].strip("`")])]
    assert wrong == []


@pytest.mark.parametrize("heading", list(TABLES))
def test_the_table_lists_the_choices_of_each_enumeration(heading: str) -> None:
    keys = model_keys(TABLES[heading])
    for row in TABLE_ROWS[heading]:
        field = keys.get(row[0].strip("`"))
        inner = unwrap(field.annotation) if field is not None else None
        # Rows that list the values in backticks (others name a vocabulary listed below).
        if isinstance(inner, type) and issubclass(inner, Enum) and "`" in row[1]:
            listed = set(re.findall(r"`([^`]+)`", row[1]))
            assert listed == {str(item.value) for item in inner}, row[0]


def test_every_connection_kind_shares_the_documented_keys() -> None:
    base = set(model_keys(SipConnection))
    for model in (ApiConnection, AsteriskConnection):
        assert set(model_keys(model)) == base
    assert ApiSettings.model_fields == {}  # "settings for kind: api: none"


def test_the_per_person_entry_names_each_switch() -> None:
    meaning = next(row[3] for row in TABLE_ROWS["### `pbx_connections` (list)"]
                   if row[0] == "`per_person`")
    assert set(re.findall(r"`(\w+)`", meaning)) >= set(PersonSwitches.model_fields)


def test_every_environment_example_sets_a_real_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Environment overrides"):text.index("## Secrets")]
    for key in re.findall(r"^\| `M365PBX_[^`]*` \| `([^`]+)`", section, re.MULTILINE):
        path = [part for part in re.split(r"\.|\[\d+\]\.?", key) if part]
        model: Any = Settings
        for part in path:
            assert part in model.model_fields, key
            inner = unwrap(model.model_fields[part].annotation)
            if get_origin(inner) is list:
                inner = unwrap(get_args(inner)[0])
            model = inner
