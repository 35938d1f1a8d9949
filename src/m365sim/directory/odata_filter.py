"""A small, strict parser for the OData `$filter` subset Graph's directory accepts.

Tokenizer plus recursive descent into a tiny AST. It refuses anything it cannot read
with Graph's 400 instead of guessing; whether a parsed clause is *allowed* for a
property (and whether it needs advanced query parameters) is decided later, in
`filter_compile.py`, against the entity's capability table.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal as TypingLiteral

from m365sim.errors import GraphError

LiteralKind = TypingLiteral["string", "guid", "int", "bool", "null"]


@dataclass(frozen=True)
class Literal:
    """A constant in the filter: its OData kind and Python value."""

    kind: LiteralKind
    value: str | int | bool | None

    def edm(self) -> str:
        """The Edm type name Graph's messages use for this literal."""
        return {"string": "Edm.String", "guid": "Edm.Guid", "int": "Edm.Int32",
                "bool": "Edm.Boolean", "null": "null"}[self.kind]


@dataclass(frozen=True)
class Compare:
    """`path op literal` with op one of eq, ne, gt, ge, lt, le."""

    path: tuple[str, ...]
    op: str
    value: Literal


@dataclass(frozen=True)
class In:
    """`path in (literal, ...)`."""

    path: tuple[str, ...]
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class Call:
    """`startsWith(path, literal)` or `endsWith(path, literal)` (name lower-cased)."""

    name: str
    path: tuple[str, ...]
    value: Literal


@dataclass(frozen=True)
class Lambda:
    """`collection/any(v: body)` or `collection/all(...)`; `any()` has no body."""

    collection: str
    quantifier: str
    variable: str | None
    body: Node | None


@dataclass(frozen=True)
class CountCompare:
    """`collection/$count op integer`."""

    collection: str
    op: str
    value: int


@dataclass(frozen=True)
class BoolOp:
    """`left and right` / `left or right`."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    """`not operand`."""

    operand: Node


Node = Compare | In | Call | Lambda | CountCompare | BoolOp | Not

MAX_DEPTH = 50
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
_FUNCTIONS = frozenset({"startswith", "endswith"})
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME = re.compile(r"\$?[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?[0-9]+")


@dataclass(frozen=True)
class Token:
    """One lexical token and where it starts."""

    kind: str  # name, string, guid, number, punct, end
    text: str
    position: int


def syntax_error(text: str, position: int, detail: str) -> GraphError:
    """Graph's 400 for a `$filter` it cannot parse (message wording chosen)."""
    return GraphError(400, "BadRequest",
                      f"Invalid filter clause: {detail} at position {position} in '{text}'.")


def tokenize(text: str) -> list[Token]:
    """Split a `$filter` string into tokens; raise Graph's 400 on a stray character."""
    tokens: list[Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char == "'":
            value, index = _string_literal(text, index)
            tokens.append(Token("string", value, index))
            continue
        guid = _GUID.match(text, index)
        if guid and not _continues_name(text, guid.end()):
            tokens.append(Token("guid", guid.group(0), index))
            index = guid.end()
            continue
        number = _NUMBER.match(text, index)
        if number and not _continues_name(text, number.end()):
            tokens.append(Token("number", number.group(0), index))
            index = number.end()
            continue
        name = _NAME.match(text, index)
        if name:
            tokens.append(Token("name", name.group(0), index))
            index = name.end()
            continue
        if char in "(),:/":
            tokens.append(Token("punct", char, index))
            index += 1
            continue
        raise syntax_error(text, index, f"character '{char}' is not valid")
    tokens.append(Token("end", "", len(text)))
    return tokens


def _continues_name(text: str, end: int) -> bool:
    return end < len(text) and (text[end].isalnum() or text[end] in "_.")


def _string_literal(text: str, start: int) -> tuple[str, int]:
    # OData doubles a quote inside a string literal: 'O''Brien'.
    chars: list[str] = []
    index = start + 1
    while index < len(text):
        if text[index] == "'":
            if index + 1 < len(text) and text[index + 1] == "'":
                chars.append("'")
                index += 2
                continue
            return "".join(chars), index + 1
        chars.append(text[index])
        index += 1
    raise syntax_error(text, start, "unterminated string literal")


class _Parser:
    """Recursive descent over the token list."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def keyword(self, *words: str) -> str | None:
        token = self.current
        if token.kind == "name" and token.text.lower() in words:
            self.index += 1
            return token.text.lower()
        return None

    def punct(self, char: str) -> bool:
        if self.current.kind == "punct" and self.current.text == char:
            self.index += 1
            return True
        return False

    def expect(self, char: str) -> None:
        if not self.punct(char):
            raise self.error(f"'{char}' expected")

    def error(self, detail: str) -> GraphError:
        found = self.current.text or "end of input"
        return syntax_error(self.text, self.current.position, f"{detail}, found '{found}'")

    def parse(self) -> Node:
        node = self.or_expr()
        if self.current.kind != "end":
            raise self.error("end of expression expected")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.keyword("or"):
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.keyword("and"):
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.nested(self.unary))
        return self.primary()

    def nested(self, parse: Callable[[], Node]) -> Node:
        """Parse one level deeper; refuse absurd nesting instead of exhausting the stack."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("expression nested too deeply")
        node = parse()
        self.depth -= 1
        return node

    def primary(self) -> Node:
        if self.punct("("):
            node = self.nested(self.or_expr)
            self.expect(")")
            return node
        token = self.current
        if token.kind != "name":
            raise self.error("property or function expected")
        if token.text.lower() in _FUNCTIONS and self.tokens[self.index + 1].text == "(":
            return self.call()
        return self.path_clause()

    def call(self) -> Call:
        name = self.current.text.lower()
        self.index += 1
        self.expect("(")
        path = self.path()
        self.expect(",")
        value = self.literal()
        self.expect(")")
        return Call(name, path, value)

    def path(self) -> tuple[str, ...]:
        parts = [self.name()]
        while self.current.text == "/" and self.tokens[self.index + 1].kind == "name" and \
                self.tokens[self.index + 1].text.lower() not in ("any", "all", "$count"):
            self.index += 1
            parts.append(self.name())
        return tuple(parts)

    def name(self) -> str:
        token = self.current
        if token.kind != "name" or token.text.startswith("$"):
            raise self.error("property name expected")
        self.index += 1
        return token.text

    def path_clause(self) -> Node:
        path = self.path()
        if self.punct("/"):
            if len(path) != 1:
                raise self.error("lambda or $count on a nested path is not supported")
            if self.keyword("$count"):
                op = self.comparison_operator()
                value = self.literal()
                if value.kind != "int" or not isinstance(value.value, int):
                    raise self.error("integer expected after $count comparison")
                return CountCompare(path[0], op, value.value)
            quantifier = self.keyword("any", "all")
            if quantifier is None:
                raise self.error("'any', 'all' or '$count' expected")
            return self.lambda_body(path[0], quantifier)
        if self.keyword("in"):
            return In(path, self.literal_list())
        op = self.comparison_operator()
        return Compare(path, op, self.literal())

    def comparison_operator(self) -> str:
        op = self.keyword(*_COMPARISONS)
        if op is None:
            raise self.error("comparison operator expected")
        return op

    def lambda_body(self, collection: str, quantifier: str) -> Lambda:
        self.expect("(")
        if self.punct(")"):
            return Lambda(collection, quantifier, None, None)
        variable = self.name()
        self.expect(":")
        body = self.nested(self.or_expr)
        self.expect(")")
        return Lambda(collection, quantifier, variable, body)

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("(")
        values = [self.literal()]
        while self.punct(","):
            values.append(self.literal())
        self.expect(")")
        return tuple(values)

    def literal(self) -> Literal:
        token = self.current
        self.index += 1
        if token.kind == "string":
            return Literal("string", token.text)
        if token.kind == "guid":
            return Literal("guid", token.text.lower())
        if token.kind == "number":
            return Literal("int", int(token.text))
        if token.kind == "name" and token.text.lower() in ("true", "false"):
            return Literal("bool", token.text.lower() == "true")
        if token.kind == "name" and token.text.lower() == "null":
            return Literal("null", None)
        self.index -= 1
        raise self.error("literal expected")


def parse_filter(text: str) -> Node:
    """Parse a `$filter` value into an AST; raise GraphError 400 if it is not valid."""
    if not text.strip():
        raise syntax_error(text, 0, "empty expression")
    return _Parser(text).parse()
