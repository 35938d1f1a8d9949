"""`$search` on directory collections: `"property:term"` clauses joined by AND / OR.

Per `concepts/search-query-parameter.md` ("Using $search on directory object
collections"): displayName (and description) are tokenized — words split at spaces,
at a lower-to-upper case change, at symbols and at digit boundaries; each search token
must match the start of some word, case-insensitively, in any order; words joined only
by symbols also match combined (`helloworld` finds `hello-world`). Every other string
property behaves like `startsWith` on the whole value. AND binds tighter than OR.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from m365sim.directory.entity import EntitySpec
from m365sim.errors import GraphError

Predicate = Callable[[Any], bool]

_CLAUSE = re.compile(r'\s*"([^"]*)"\s*')
_CONNECTIVE = re.compile(r"(AND|OR)\b", re.IGNORECASE)


def invalid_search(detail: str) -> GraphError:
    """The 400 for a `$search` value the simulator cannot read (wording chosen)."""
    return GraphError(400, "BadRequest", f"Invalid $search query: {detail}")


def words(text: str) -> list[str]:
    """Split text into lower-cased words the way directory search tokenizes."""
    result: list[str] = []
    current: list[str] = []
    previous = ""
    for char in text:
        kind = _kind(char)
        if kind == "symbol" or kind == "ideograph":
            _flush(current, result)
            if kind == "ideograph":
                result.append(char.casefold())
            previous = kind
            continue
        # A word ends between letters and digits, and where lower case turns upper
        # ("HelloWORld" -> hello, world; "HELLOworld" stays one word).
        boundary = (
            (kind == "digit") != (previous == "digit")
            or (previous == "lower" and kind == "upper")
        )
        if boundary and previous not in ("", "symbol", "ideograph"):
            _flush(current, result)
        current.append(char)
        previous = kind
    _flush(current, result)
    return result


def _kind(char: str) -> str:
    if char.isdigit():
        return "digit"
    if char.isupper():
        return "upper"
    if char.islower():
        return "lower"
    if char.isalpha():
        return "ideograph"
    return "symbol"


def _flush(current: list[str], result: list[str]) -> None:
    if current:
        result.append("".join(current).casefold())
        current.clear()


def tokens(text: str) -> set[str]:
    """The search tokens of a tokenized property value (lower-cased)."""
    result: set[str] = set()
    for chunk in text.split():
        found = words(chunk)
        result.update(found)
        if len(found) > 1:
            # Words separated only by symbols also match as one token.
            result.add("".join(found))
    return result


def _term_tokens(term: str) -> list[str]:
    return words(term)


def _clause(spec: EntitySpec, text: str) -> Predicate:
    name, colon, term = text.partition(":")
    if not colon:
        raise invalid_search(f"'{text}' must have the form \"property:value\"")
    prop = spec.prop(name.strip())
    canonical = prop.name if prop else spec.canonical(name.strip())
    if canonical is None:
        raise GraphError(400, "BadRequest", f"Could not find a property named '{name.strip()}' "
                                            f"on type '{spec.type_name}'.")
    if prop is None or canonical not in spec.searchable:
        raise GraphError(400, "Request_UnsupportedQuery",
                         f"Unsupported or invalid query filter clause specified for property "
                         f"'{canonical}' of resource '{spec.resource}'.")
    get = prop.get
    if canonical in spec.tokenized_search:
        wanted = _term_tokens(term)
        if not wanted:
            return lambda item: True

        def tokenized(item: Any) -> bool:
            value = get(item)
            if not isinstance(value, str):
                return False
            have = tokens(value)
            return all(any(word.startswith(w) for word in have) for w in wanted)

        return tokenized
    prefix = term.strip().casefold()
    return lambda item: isinstance(get(item), str) and get(item).casefold().startswith(prefix)


def compile_search(spec: EntitySpec, value: str) -> Predicate:
    """A predicate for a `$search` value; GraphError 400 if it cannot be read."""
    disjuncts: list[list[Predicate]] = [[]]
    position = 0
    expect_clause = True
    while position < len(value):
        if expect_clause:
            match = _CLAUSE.match(value, position)
            if match is None:
                raise invalid_search("each clause must be a double-quoted \"property:value\"")
            disjuncts[-1].append(_clause(spec, match.group(1)))
            position = match.end()
        else:
            match = _CONNECTIVE.match(value, position)
            if match is None:
                raise invalid_search("clauses must be joined with AND or OR")
            if match.group(1).upper() == "OR":
                disjuncts.append([])
            position = match.end()
        expect_clause = not expect_clause
    if expect_clause:
        raise invalid_search("a clause is missing")
    groups = [list(group) for group in disjuncts]
    return lambda item: any(all(p(item) for p in group) for group in groups)
