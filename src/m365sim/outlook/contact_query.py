"""$filter, $search and $orderby over personal contacts.

Filters (api-reference/v1.0/api/user-list-contacts.md, graph.md 7): `eq` on
`emailAddresses/any(a:a/address eq '...')` only on the address, and `eq`/`startswith` on
displayName, givenName, surname and companyName, joined by `and`/`or` with parentheses.
Outlook compares strings without regard to case. Anything else gets Outlook's
`ErrorInvalidUrlQueryFilter`; text that does not parse gets Graph's `BadRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from m365sim.errors import GraphError
from m365sim.outlook.model import Contact

Predicate = Callable[[Contact], bool]

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<sym>[(),:/])|(?P<word>[A-Za-z_]\w*))")
_NAMED_FIELDS: dict[str, Callable[[Contact], str | None]] = {
    "displayname": lambda c: c.display_name,
    "givenname": lambda c: c.given_name,
    "surname": lambda c: c.surname,
    "companyname": lambda c: c.company_name,
}


def invalid_nodes() -> GraphError:
    """Outlook's refusal of a filter it does not support (observed message)."""
    return GraphError(400, "ErrorInvalidUrlQueryFilter",
                      "The query filter contains one or more invalid nodes.")


def _syntax(text: str, position: int) -> GraphError:
    return GraphError(400, "BadRequest",
                      f"Invalid filter clause: syntax error at position {position} in '{text}'.")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if not match:
                raise _syntax(text, position)
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind), match.start(kind)))
            position = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (
                value is not None and token[1].lower() != value):
            raise _syntax(self.text, token[2] if token else len(self.text))
        self.index += 1
        return token[1]

    def string(self) -> str:
        return self.take("str")[1:-1].replace("''", "'")

    def expression(self) -> Predicate:
        left = self.conjunction()
        while (token := self.peek()) and token[0] == "word" and token[1].lower() == "or":
            self.index += 1
            right = self.conjunction()
            left = (lambda a, b: lambda c: a(c) or b(c))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.term()
        while (token := self.peek()) and token[0] == "word" and token[1].lower() == "and":
            self.index += 1
            right = self.term()
            left = (lambda a, b: lambda c: a(c) and b(c))(left, right)
        return left

    def term(self) -> Predicate:
        token = self.peek()
        if token is None:
            raise _syntax(self.text, len(self.text))
        if token[0] == "sym" and token[1] == "(":
            self.index += 1
            inner = self.expression()
            self.take("sym", ")")
            return inner
        name = self.take("word")
        if name.lower() == "startswith":
            return self.startswith()
        if name.lower() == "emailaddresses":
            return self.any_address()
        operator = self.take("word").lower()
        value = self.string()
        field = _NAMED_FIELDS.get(name.lower())
        if field is None or operator != "eq":
            raise invalid_nodes()
        wanted = value.casefold()
        return lambda c: (field(c) or "").casefold() == wanted

    def startswith(self) -> Predicate:
        self.take("sym", "(")
        name = self.take("word")
        self.take("sym", ",")
        prefix = self.string().casefold()
        self.take("sym", ")")
        field = _NAMED_FIELDS.get(name.lower())
        if field is None:
            raise invalid_nodes()
        return lambda c: (field(c) or "").casefold().startswith(prefix)

    def any_address(self) -> Predicate:
        self.take("sym", "/")
        if self.take("word").lower() != "any":
            raise invalid_nodes()
        self.take("sym", "(")
        variable = self.take("word")
        self.take("sym", ":")
        if self.take("word") != variable:
            raise _syntax(self.text, self.tokens[self.index - 1][2])
        self.take("sym", "/")
        member = self.take("word").lower()
        operator = self.take("word").lower()
        value = self.string().casefold()
        self.take("sym", ")")
        # Only `address` with `eq` is supported inside emailAddresses (user-list-contacts.md).
        if member != "address" or operator != "eq":
            raise invalid_nodes()
        return lambda c: any(e.address.casefold() == value for e in c.email_addresses)


def parse_filter(text: str) -> Predicate:
    """A predicate for a contacts $filter expression; GraphError 400 if unsupported."""
    parser = _Parser(text)
    if not parser.tokens:
        raise _syntax(text, 0)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise _syntax(text, parser.tokens[parser.index][2])
    return predicate


def _words(contact: Contact) -> list[str]:
    values = [contact.display_name, contact.given_name, contact.surname, contact.company_name]
    words = [w.casefold() for v in values if v for w in re.split(r"[\s,.;()\-]+", v) if w]
    for email in contact.email_addresses:
        words.append(email.address.casefold())
        words.append(email.address.split("@")[0].casefold())
    return words


def parse_search(text: str) -> Predicate:
    """A predicate for `$search="..."`: every word of the search text must start one of the
    contact's name, company or e-mail words (the simulator's choice: not documented)."""
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        stripped = stripped[1:-1]
    terms = [t.casefold() for t in stripped.split() if t]
    if not terms:
        raise GraphError(400, "BadRequest", "The $search query option needs a search term.")
    return lambda c: all(any(w.startswith(t) for w in _words(c)) for t in terms)


_ORDER_FIELDS: dict[str, Callable[[Contact], str | datetime | None]] = {
    "displayname": lambda c: (c.display_name or "").casefold(),
    "givenname": lambda c: (c.given_name or "").casefold(),
    "surname": lambda c: (c.surname or "").casefold(),
    "companyname": lambda c: (c.company_name or "").casefold(),
    "createddatetime": lambda c: c.created,
    "lastmodifieddatetime": lambda c: c.modified,
}


def order(contacts: list[Contact], text: str) -> list[Contact]:
    """Sort contacts by an $orderby list (stable, applied right to left)."""
    keys = []
    for clause in text.split(","):
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2
                                           and parts[1].lower() not in ("asc", "desc")):
            raise GraphError(400, "BadRequest", f"Invalid $orderby clause '{clause.strip()}'.")
        key = _ORDER_FIELDS.get(parts[0].lower())
        if key is None:
            raise GraphError(400, "ErrorInvalidProperty",
                             f"The property '{parts[0]}' does not support sorting.")
        keys.append((key, len(parts) == 2 and parts[1].lower() == "desc"))
    result = list(contacts)
    for key, descending in reversed(keys):
        result.sort(key=key, reverse=descending)  # type: ignore[arg-type]
    return result
