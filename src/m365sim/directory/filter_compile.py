"""Turn a parsed `$filter` into a predicate, enforcing what Graph's directory allows.

Rules (concepts/aad-advanced-queries.md, graph.md 2.1): `ne`, `not`, `endsWith`,
`/$count` and null comparisons work only as advanced queries (ConsistencyLevel:
eventual + `$count=true`); properties such as `onPremisesSamAccountName` or `mobilePhone`
are indexed only for advanced queries; `in` works wherever `eq` does. Entra compares
strings without regard to case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from m365sim.directory.entity import ANY, COUNT, ENDS, EQ, IN, NOT, NULL, EntitySpec, Prop
from m365sim.directory.odata_filter import (
    BoolOp,
    Call,
    Compare,
    CountCompare,
    In,
    Lambda,
    Literal,
    Node,
    Not,
)
from m365sim.errors import GraphError

Predicate = Callable[[Any], bool]

ADVANCED_HINT = (
    "is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)
_OP_NAMES = {"eq": "Equal", "ne": "NotEqual", "ge": "GreaterThanOrEqual",
             "le": "LessThanOrEqual", "gt": "GreaterThan", "lt": "LessThan"}
_EDM = {"string": "Edm.String", "bool": "Edm.Boolean", "guid": "Edm.Guid",
        "strings": "Edm.String", "objects": "Edm.ComplexType"}


def unsupported_clause(spec: EntitySpec, name: str) -> GraphError:
    """Graph's 400 for a clause the property's index does not serve."""
    return GraphError(400, "Request_UnsupportedQuery",
                      f"Unsupported or invalid query filter clause specified for property "
                      f"'{name}' of resource '{spec.resource}'.")


def needs_advanced(operator: str) -> GraphError:
    """Graph's 400 when an operator needs ConsistencyLevel + $count (documented wording)."""
    return GraphError(400, "Request_UnsupportedQuery", f"Operator '{operator}' {ADVANCED_HINT}")


class _Compiler:
    def __init__(self, spec: EntitySpec, advanced: bool) -> None:
        self.spec = spec
        self.advanced = advanced

    def compile(self, node: Node) -> Predicate:
        if isinstance(node, BoolOp):
            parts = [self.compile(operand) for operand in _operands(node)]
            if node.op == "and":
                return lambda item: all(part(item) for part in parts)
            return lambda item: any(part(item) for part in parts)
        if isinstance(node, Not):
            if not self.advanced:
                raise needs_advanced("Not")
            inner = self.compile(node.operand)
            return lambda item: not inner(item)
        if isinstance(node, Lambda):
            return self.lambda_(node)
        if isinstance(node, CountCompare):
            return self.count(node)
        if isinstance(node, Compare | In | Call):
            if len(node.path) != 1:
                raise unsupported_clause(self.spec, "/".join(node.path))
            prop = self.scalar_prop(node.path[0])
            return self.clause(node, prop, prop.get)
        raise GraphError(400, "BadRequest", "Invalid filter clause.")  # pragma: no cover

    def property(self, name: str) -> Prop:
        prop = self.spec.prop(name)
        if prop is not None:
            return prop
        canonical = self.spec.canonical(name)
        if canonical is None:
            raise GraphError(400, "BadRequest", f"Could not find a property named '{name}' on "
                                                f"type '{self.spec.type_name}'.")
        raise unsupported_clause(self.spec, canonical)

    def scalar_prop(self, name: str) -> Prop:
        prop = self.property(name)
        if prop.kind in ("strings", "objects"):
            # Collections are filtered through any(...) (filter-query-parameter.md).
            raise unsupported_clause(self.spec, prop.name)
        return prop

    def check(self, prop: Prop, op: str, operator_label: str) -> None:
        if prop.supports(op, self.advanced):
            return
        if prop.needs_advanced(op):
            if op in (NOT, ENDS, "ne"):
                raise needs_advanced(operator_label)
            raise unsupported_clause(self.spec, prop.name)
        raise unsupported_clause(self.spec, prop.name)

    def clause(self, node: Compare | In | Call, prop: Prop,
               get: Callable[[Any], Any]) -> Predicate:
        if isinstance(node, In):
            self.check(prop, IN, "in")
            values = frozenset(self.coerce(prop, value, "eq") for value in node.values)
            return lambda item: _fold(get(item)) in values
        if isinstance(node, Call):
            self.check(prop, node.name, "endsWith" if node.name == ENDS else "startsWith")
            if prop.kind != "string" and prop.kind != "strings":
                raise unsupported_clause(self.spec, prop.name)
            prefix = self.coerce(prop, node.value, node.name)
            if not isinstance(prefix, str):
                raise unsupported_clause(self.spec, prop.name)
            if node.name == ENDS:
                return lambda item: _text(get(item)).endswith(prefix)
            return lambda item: _text(get(item)).startswith(prefix)
        if node.value.kind == "null":
            if node.op not in ("eq", "ne"):
                raise unsupported_clause(self.spec, prop.name)
            self.check(prop, NULL, node.op)
            wanted_null = node.op == "eq"
            return lambda item: (get(item) is None) == wanted_null
        if node.op in ("gt", "lt"):
            raise unsupported_clause(self.spec, prop.name)
        self.check(prop, node.op, node.op)
        value = self.coerce(prop, node.value, node.op)
        return _comparison(node.op, value, get)

    def coerce(self, prop: Prop, literal: Literal, op: str) -> Any:
        """The literal as a comparable value; Graph's 400 when the types do not match."""
        kind = "string" if prop.kind == "strings" else prop.kind
        ok = (
            (kind == "string" and literal.kind == "string")
            or (kind == "bool" and literal.kind == "bool")
            # A quoted GUID is accepted for Edm.Guid properties too (simulator choice).
            or (kind == "guid" and literal.kind in ("guid", "string"))
        )
        if not ok:
            raise GraphError(
                400, "BadRequest",
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[prop.kind]}' and '{literal.edm()}' for operator kind "
                f"'{_OP_NAMES.get(op, 'Equal')}'.")
        return _fold(literal.value)

    def lambda_(self, node: Lambda) -> Predicate:
        prop = self.property(node.collection)
        if prop.kind not in ("strings", "objects") or ANY not in prop.default_ops:
            raise unsupported_clause(self.spec, prop.name)
        if node.quantifier != "any" or node.body is None or node.variable is None:
            raise unsupported_clause(self.spec, prop.name)
        element = self.element(prop, node.variable, node.body)
        get = prop.get
        return lambda item: any(element(value) for value in (get(item) or ()))

    def element(self, prop: Prop, variable: str, node: Node) -> Predicate:
        """Compile a lambda body; its paths start with the range variable."""
        if isinstance(node, BoolOp):
            parts = [self.element(prop, variable, operand) for operand in _operands(node)]
            if node.op == "and":
                return lambda value: all(part(value) for part in parts)
            return lambda value: any(part(value) for part in parts)
        if isinstance(node, Compare | In | Call):
            if node.path[0] != variable:
                raise unsupported_clause(self.spec, prop.name)
            if prop.kind == "strings":
                if len(node.path) != 1:
                    raise unsupported_clause(self.spec, prop.name)
                return self.clause(node, prop, lambda value: value)
            if len(node.path) != 2 or node.path[1].lower() not in prop.items:
                raise unsupported_clause(self.spec, prop.name)
            item_prop = prop.items[node.path[1].lower()]
            return self.clause(node, item_prop, item_prop.get)
        raise unsupported_clause(self.spec, prop.name)

    def count(self, node: CountCompare) -> Predicate:
        prop = self.property(node.collection)
        if prop.kind not in ("strings", "objects") or COUNT not in prop.advanced_ops:
            raise unsupported_clause(self.spec, prop.name)
        if not self.advanced:
            raise needs_advanced("$count")
        if node.op not in ("eq", "ne"):
            raise unsupported_clause(self.spec, prop.name)
        wanted, get = node.value, prop.get
        if node.op == "eq":
            return lambda item: len(get(item) or ()) == wanted
        return lambda item: len(get(item) or ()) != wanted


def _operands(node: BoolOp) -> list[Node]:
    """The operands of a chain of the same operator, flattened without recursion."""
    operands: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, BoolOp) and current.op == node.op:
            stack.extend((current.right, current.left))
        else:
            operands.append(current)
    return operands


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _text(value: Any) -> str:
    return value.casefold() if isinstance(value, str) else ""


def _comparison(op: str, value: Any, get: Callable[[Any], Any]) -> Predicate:
    if op == EQ:
        return lambda item: _fold(get(item)) == value
    if op == "ne":
        return lambda item: _fold(get(item)) != value

    def ordered(item: Any) -> bool:
        current = _fold(get(item))
        if current is None:
            return False
        return bool(current >= value) if op == "ge" else bool(current <= value)

    return ordered


def compile_filter(node: Node, spec: EntitySpec, *, advanced: bool) -> Predicate:
    """A predicate for `node`; GraphError 400 where Graph refuses the clause."""
    return _Compiler(spec, advanced).compile(node)


def referenced_properties(node: Node) -> Iterable[str]:
    """Names of the top-level properties a filter reads (for permission checks)."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, BoolOp):
            stack.extend((current.right, current.left))
        elif isinstance(current, Not):
            stack.append(current.operand)
        elif isinstance(current, Lambda | CountCompare):
            yield current.collection
        else:
            yield current.path[0]
