"""Loading Microsoft users from what `GET /v1.0/users` returned, saved as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from m365pbx.directory_files.text import decode_text, parse_json, read_bytes
from m365pbx.errors import UserInputError

EXPECTED = (
    'expected what GET /v1.0/users returns: a page {"value": [users]}, a list of such pages,'
    " or a list of user objects"
)


@dataclass(frozen=True)
class TeamsUsersFile:
    """The Microsoft users of one file, in file order, and what a person should know about it."""

    users: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def load_teams_users(path: Path) -> TeamsUsersFile:
    """Load Microsoft users from a JSON file; raise UserInputError naming the place of a problem."""
    source = str(path)
    document = parse_json(decode_text(read_bytes(path), source), source)
    pages = list(_pages(document, source))
    users: list[dict[str, Any]] = []
    # Where each id was first seen, as (page, number): the words are written only for an error.
    seen: dict[str, tuple[str, int]] = {}
    for prefix, values in pages:
        if not isinstance(values, list):
            raise UserInputError(
                f"'value' must be a list of users; {EXPECTED}", source=source, location=prefix
            )
        for number, user in enumerate(values):
            user_id = user.get("id") if isinstance(user, dict) else None
            if isinstance(user_id, str) and user_id.strip() and user_id not in seen:
                seen[user_id] = (prefix, number)
                continue
            _refuse_user(user, source, f"{prefix}[{number}]", seen)
        users.extend(values)
    warnings = []
    if _last_page_has_next_link(document):
        warnings.append(
            f"{source}: the last page has @odata.nextLink, so the file holds only part of the"
            " users; fetch every page"
        )
    if not users:
        warnings.append(f"{source}: the file holds no Microsoft users")
    return TeamsUsersFile(users, warnings)


def _refuse_user(
    user: object, source: str, where: str, seen: dict[str, tuple[str, int]]
) -> NoReturn:
    """Raise the UserInputError that says what is wrong with this user."""
    if not isinstance(user, dict):
        raise UserInputError(
            f"a user must be a JSON object, found {type(user).__name__}",
            source=source,
            location=where,
        )
    user_id = user.get("id")
    if not isinstance(user_id, str) or not user_id.strip():
        raise UserInputError(
            "this user has no 'id' (the Microsoft object id); export with $select=id,...",
            source=source,
            location=where,
        )
    prefix, number = seen[user_id]
    raise UserInputError(
        f"id {user_id!r} appears twice: at {prefix}[{number}] and {where}",
        source=source,
        location=where,
    )


def _pages(document: object, source: str) -> Iterator[tuple[str, object]]:
    if isinstance(document, dict):
        if "value" in document:
            yield "value", document["value"]
            return
        error = document.get("error")
        if isinstance(error, dict):
            raise UserInputError(
                f"this is a Graph error answer ({error.get('code')}: {error.get('message')}),"
                " not a list of users",
                source=source,
            )
        raise UserInputError(f"no 'value' key; {EXPECTED}", source=source)
    if not isinstance(document, list):
        raise UserInputError(f"found a JSON {type(document).__name__}; {EXPECTED}", source=source)
    if document and all(isinstance(item, dict) and "value" in item for item in document):
        for number, page in enumerate(document):
            yield f"[{number}].value", page["value"]
    else:
        yield "", document


def _last_page_has_next_link(document: object) -> bool:
    last = document[-1] if isinstance(document, list) and document else document
    return isinstance(last, dict) and bool(last.get("@odata.nextLink"))
