"""Loading PBX users from a CSV export (`,` `;` or tab) or a JSON list of objects."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from m365pbx.core.matching import PBX_KEY_FIELD, STANDARD_PBX_FIELDS, PbxUser
from m365pbx.directory_files.text import decode_text, parse_json, read_bytes
from m365pbx.errors import UserInputError

DELIMITERS = (",", ";", "\t")
_STANDARD_BY_FOLDED = {name.casefold(): name for name in STANDARD_PBX_FIELDS}


@dataclass(frozen=True)
class PbxUsersFile:
    """The PBX users of one file and its column names (standard ones spelled in lower case)."""

    users: list[PbxUser]
    columns: tuple[str, ...]


def load_pbx_users(path: Path, encoding: str | None = None) -> PbxUsersFile:
    """Load PBX users from CSV or JSON; raise UserInputError naming the file and line or key."""
    source = str(path)
    text = decode_text(read_bytes(path), source, encoding)
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        return _from_json(parse_json(text, source), source)
    return _from_csv(text, source)


def detect_delimiter(header_line: str) -> str:
    """Pick the delimiter that splits the header line into the most columns (`,` if none)."""
    counts = {delimiter: 0 for delimiter in DELIMITERS}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _column_names(raw_names: Sequence[str], source: str, location: str) -> tuple[str, ...]:
    names: list[str] = []
    for number, raw in enumerate(raw_names, start=1):
        name = raw.strip()
        if not name:
            raise UserInputError(f"column {number} has no name", source=source, location=location)
        name = _STANDARD_BY_FOLDED.get(name.casefold(), name)
        if name in names:
            raise UserInputError(
                f"two columns are named {name!r}", source=source, location=location
            )
        names.append(name)
    if PBX_KEY_FIELD not in names:
        raise UserInputError(
            f"no {PBX_KEY_FIELD!r} column (the PBX short name that identifies each user); "
            f"columns found: {', '.join(names)}",
            source=source,
            location=location,
        )
    return tuple(names)


def _from_csv(text: str, source: str) -> PbxUsersFile:
    first_line = _first_line(text)
    if first_line is None:
        raise UserInputError("the file is empty; expected a header line", source=source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=detect_delimiter(first_line))
    columns: tuple[str, ...] | None = None
    users = _Users(source, "line {}")
    key_at, others, width = 0, [(0, "")], 0
    line_after = 0
    try:
        for row in reader:
            line, line_after = line_after + 1, reader.line_num
            if columns is None:
                if "".join(row).strip():
                    columns = _column_names(row, source, f"line {line}")
                    key_at, width = columns.index(PBX_KEY_FIELD), len(columns)
                    others = [(at, name) for at, name in enumerate(columns) if at != key_at]
                continue
            if len(row) != width:
                if not "".join(row).strip():
                    continue
                raise UserInputError(
                    f"{len(row)} fields, but the header has {len(columns)} columns",
                    source=source,
                    location=f"line {line}",
                )
            h323 = row[key_at].strip()
            if not h323 and not "".join(row).strip():
                continue
            # One pass per row, empty values left out: the hot loop of a 50,000-user export.
            fields = {name: value for at, name in others if (value := row[at].strip())}
            users.add(line, h323, fields)
    except csv.Error as exc:
        raise UserInputError(
            f"broken CSV: {exc}", source=source, location=f"line {reader.line_num}"
        ) from None
    assert columns is not None
    return PbxUsersFile(users.checked(), columns)


def _first_line(text: str) -> str | None:
    """The first line that is not blank (the header), without splitting the whole text."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        if line.strip():
            return line
        if end < 0:
            break
        start = end + 1
    return None


def _from_json(document: object, source: str) -> PbxUsersFile:
    if not isinstance(document, list):
        raise UserInputError(
            f"expected a JSON list of PBX user objects, found a {type(document).__name__}",
            source=source,
        )
    columns: dict[str, None] = {}
    rows: list[tuple[int, str, dict[str, str]]] = []
    for number, item in enumerate(document):
        location = f"[{number}]"
        if not isinstance(item, dict):
            raise UserInputError(
                f"a PBX user must be a JSON object, found {type(item).__name__}",
                source=source,
                location=location,
            )
        fields: dict[str, str] = {}
        for raw_key, value in item.items():
            key = _STANDARD_BY_FOLDED.get(raw_key.strip().casefold(), raw_key.strip())
            columns.setdefault(key, None)
            fields[key] = _json_text(value, source, f"{location}.{raw_key}")
        h323 = fields.pop(PBX_KEY_FIELD, "")
        rows.append((number, h323, {name: value for name, value in fields.items() if value}))
    if document and PBX_KEY_FIELD not in columns:
        raise UserInputError(
            f"no {PBX_KEY_FIELD!r} key (the PBX short name that identifies each user); "
            f"keys found: {', '.join(columns)}",
            source=source,
        )
    users = _Users(source, "[{}]")
    for number, h323, fields in rows:
        users.add(number, h323, fields)
    return PbxUsersFile(users.checked(), tuple(columns))


def _json_text(value: object, source: str, location: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise UserInputError(
        f"unsupported value of type {type(value).__name__}; PBX fields hold text or numbers",
        source=source,
        location=location,
    )


class _Users:
    """PBX users as they are read, each h323 once; `where` turns a place number into words."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        self.users: list[PbxUser] = []
        self.first: dict[str, int] = {}
        self.again: dict[str, list[int]] = {}

    def add(self, place: int, h323: str, fields: dict[str, str]) -> None:
        """Add one user read at `place` (line or index) with its non-empty fields."""
        if not h323:
            raise UserInputError(
                f"empty {PBX_KEY_FIELD!r} (every PBX user needs a short name)",
                source=self.source,
                location=self.where.format(place),
            )
        first = self.first.setdefault(h323, place)
        if first != place:
            self.again.setdefault(h323, [first]).append(place)
        self.users.append(PbxUser(h323, fields))

    def checked(self) -> list[PbxUser]:
        """The users read, or UserInputError naming the places of repeated h323 values."""
        if not self.again:
            return self.users
        duplicates = sorted(self.again.items(), key=lambda item: item[1][0])
        where = self.where.format
        listed = "; ".join(
            f"'{h323}' on {', '.join(where(place) for place in places)}"
            for h323, places in duplicates[:5]
        )
        raise UserInputError(
            f"{PBX_KEY_FIELD} must be unique, but some appear more than once: {listed}",
            source=self.source,
            location=where(duplicates[0][1][1]),
        )
