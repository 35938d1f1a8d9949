"""What a directory entity type offers to OData queries: properties, filter support, search.

An `EntitySpec` describes one Graph type (user, group) for `$select`, `$filter`,
`$search` and `$orderby`. The per-property operator table follows
`includes/filter-directory-objects.md` (via `concepts/aad-advanced-queries.md`):
`default_ops` work without advanced query parameters, `advanced_ops` need
`ConsistencyLevel: eventual` plus `$count=true`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from m365sim.errors import GraphError

Kind = Literal["string", "bool", "guid", "strings", "objects"]

# Operator names used in the capability tables.
EQ, NE, NOT, GE, LE, IN = "eq", "ne", "not", "ge", "le", "in"
STARTS, ENDS, NULL, ANY, COUNT = "startswith", "endswith", "null", "any", "count"


@dataclass(frozen=True)
class Prop:
    """One filterable property: its Graph name, kind, value getter and operator support."""

    name: str
    kind: Kind
    get: Callable[[Any], Any]
    default_ops: frozenset[str] = frozenset()
    advanced_ops: frozenset[str] = frozenset()
    # For "objects" collections: the element properties usable inside any(...).
    items: Mapping[str, Prop] = field(default_factory=dict)

    def supports(self, op: str, advanced: bool) -> bool:
        """Whether `op` is allowed on this property with or without advanced parameters."""
        return op in self.default_ops or (advanced and op in self.advanced_ops)

    def needs_advanced(self, op: str) -> bool:
        """Whether `op` would work here only with advanced query parameters."""
        return op not in self.default_ops and op in self.advanced_ops


def ops(*names: str) -> frozenset[str]:
    """A set of operator names."""
    return frozenset(names)


@dataclass(frozen=True)
class EntitySpec:
    """Query support of one Graph entity type."""

    type_name: str  # "microsoft.graph.user"
    resource: str  # "User", as in Request_UnsupportedQuery messages
    entity_set: str  # "users", for @odata.context
    props: Mapping[str, Prop]  # filterable properties, by lower-cased name
    render: Mapping[str, Callable[[Any], Any]]  # every selectable property's getter, by name
    default_select: tuple[str, ...]
    tokenized_search: frozenset[str] = frozenset({"displayName"})
    searchable: frozenset[str] = frozenset()
    orderable: frozenset[str] = frozenset()
    # Properties that exist on the type but cannot be listed (SharePoint-backed on user).
    list_unsupported: frozenset[str] = frozenset()
    _canonical: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for name in self.render:
            self._canonical[name.lower()] = name

    def canonical(self, name: str) -> str | None:
        """The property's Graph spelling (names are case-insensitive in Graph), or None."""
        return self._canonical.get(name.lower())

    def prop(self, name: str) -> Prop | None:
        """The filterable property called `name` (any casing), if there is one."""
        return self.props.get(name.lower())

    def to_json(self, item: Any, select: tuple[str, ...]) -> dict[str, Any]:
        """The item as Graph returns it with these properties, in this order."""
        return {name: self.render[name](item) for name in select}


def unknown_property(spec: EntitySpec, name: str) -> GraphError:
    """Graph's 400 for a property the type does not have (OData parser wording)."""
    return GraphError(400, "BadRequest", f"Could not find a property named '{name}' on type "
                                         f"'{spec.type_name}'.")
