"""OData query options on directory collections: parse, check, and serve one page.

Covers `$select`, `$filter`, `$search`, `$orderby`, `$top`, `$count` and `$skiptoken`
with the rules of graph.md 2.1 and `concepts/aad-advanced-queries.md`: `$search` needs
`ConsistencyLevel: eventual`; `$count=true` without that header is silently ignored;
`$filter` together with `$orderby` needs the header and `$count=true`; `@odata.count`
is on the first page only; `$skip` is refused.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import Request

from m365sim.directory.entity import EntitySpec
from m365sim.directory.filter_compile import compile_filter, referenced_properties
from m365sim.directory.odata_filter import parse_filter
from m365sim.directory.search import compile_search
from m365sim.directory.tokens import TokenError, TokenSigner
from m365sim.errors import GraphError

Predicate = Callable[[Any], bool]

KNOWN_OPTIONS = frozenset({"$select", "$filter", "$search", "$orderby", "$top", "$count",
                           "$skiptoken", "$expand", "$skip", "$format", "$deltatoken"})
DEFAULT_TOP = 100
MAX_TOP = 999


def query_options(request: Request) -> dict[str, str]:
    """The request's `$` options by lower-cased name; 400 for unknown or repeated ones."""
    options: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith("$"):
            continue  # Graph ignores parameters that are not system query options here.
        key = name.lower()
        if key not in KNOWN_OPTIONS:
            raise GraphError(400, "BadRequest", f"The query parameter '{name}' is not supported.")
        if key in options:
            raise GraphError(400, "BadRequest", f"Query option '{name}' was specified more "
                                                f"than once, but it must be specified at most "
                                                f"once.")
        options[key] = value
    return options


def eventual(request: Request) -> bool:
    """Whether the request carries `ConsistencyLevel: eventual`."""
    return request.headers.get("consistencylevel", "").strip().lower() == "eventual"


def parse_select(spec: EntitySpec, value: str | None) -> tuple[str, ...]:
    """Canonical property names of a `$select`, or () when there is none."""
    if value is None or not value.strip():
        return ()
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if not name:
            continue
        canonical = spec.canonical(name)
        if canonical is None:
            raise GraphError(400, "BadRequest", "Parsing OData Select and Expand failed: Could "
                                                f"not find a property named '{name}' on type "
                                                f"'{spec.type_name}'.")
        if canonical not in names:
            names.append(canonical)
    return tuple(names)


def parse_top(value: str | None) -> int:
    """The page size from `$top` (default 100, 1..999; graph.md 2.1)."""
    if value is None:
        return DEFAULT_TOP
    try:
        top = int(value)
    except ValueError:
        raise GraphError(400, "BadRequest", f"Invalid value '{value}' for $top query option "
                                            f"found. The $top query option requires a "
                                            f"non-negative integer value.") from None
    if not 1 <= top <= MAX_TOP:
        raise GraphError(400, "Request_BadRequest", f"Invalid page size specified: '{top}'. "
                                                    f"Must be between 1 and {MAX_TOP} "
                                                    f"inclusive.")
    return top


def parse_bool(name: str, value: str | None) -> bool:
    """An OData boolean query option (`true` / `false`)."""
    if value is None:
        return False
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise GraphError(400, "BadRequest", f"Invalid value '{value}' for {name} query option "
                                        f"found. Valid values are 'true' and 'false'.")


@dataclass
class CollectionQuery:
    """A checked collection query, ready to run over items."""

    spec: EntitySpec
    select: tuple[str, ...]
    top: int
    count: bool
    predicates: list[Predicate] = field(default_factory=list)
    orderby: list[tuple[str, bool]] = field(default_factory=list)
    read_properties: set[str] = field(default_factory=set)
    skiptoken: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def parse_collection_query(request: Request, spec: EntitySpec) -> CollectionQuery:
    """Read and check the query options of a collection request against `spec`."""
    options = query_options(request)
    if "$skip" in options:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$expand" in options:
        # Simulator choice: navigation properties are not modelled (documented).
        raise GraphError(400, "Request_UnsupportedQuery",
                         "$expand is not supported for this request by the simulator.")
    if "$deltatoken" in options:
        raise GraphError(400, "BadRequest", "The query parameter '$deltatoken' is only valid "
                                            "on a delta function.")
    advanced_header = eventual(request)
    count = parse_bool("$count", options.get("$count"))
    advanced = advanced_header and count
    query = CollectionQuery(spec=spec, select=parse_select(spec, options.get("$select")),
                            top=parse_top(options.get("$top")), count=count and advanced_header,
                            skiptoken=options.get("$skiptoken"), options=options)
    if "$filter" in options:
        node = parse_filter(options["$filter"])
        query.predicates.append(compile_filter(node, spec, advanced=advanced))
        query.read_properties.update(referenced_properties(node))
    if "$search" in options:
        if not advanced_header:
            raise GraphError(400, "Request_UnsupportedQuery",
                             "Request with $search query parameter only works through MSGraph "
                             "with a special request header: 'ConsistencyLevel: eventual'")
        query.predicates.append(compile_search(spec, options["$search"]))
        query.read_properties.update(_search_properties(options["$search"]))
    if "$orderby" in options:
        query.orderby = _parse_orderby(spec, options["$orderby"])
        query.read_properties.update(name for name, _ in query.orderby)
        if "$filter" in options and not advanced:
            raise GraphError(400, "Request_UnsupportedQuery",
                             "Sorting not supported for current query.")
    return query


def _search_properties(value: str) -> list[str]:
    names = []
    for part in value.split('"')[1::2]:
        name, colon, _ = part.partition(":")
        if colon:
            names.append(name.strip())
    return names


def _parse_orderby(spec: EntitySpec, value: str) -> list[tuple[str, bool]]:
    result: list[tuple[str, bool]] = []
    for clause in value.split(","):
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and
                                           parts[1].lower() not in ("asc", "desc")):
            raise GraphError(400, "BadRequest", f"Invalid $orderby clause '{clause.strip()}'.")
        canonical = spec.canonical(parts[0])
        if canonical is None:
            raise GraphError(400, "BadRequest", f"Could not find a property named '{parts[0]}' "
                                                f"on type '{spec.type_name}'.")
        if canonical not in spec.orderable:
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"Order by '{canonical}' is not supported.")
        result.append((canonical, len(parts) == 2 and parts[1].lower() == "desc"))
    return result


def _sort_key(spec: EntitySpec, orderby: Sequence[tuple[str, bool]]) -> Callable[[Any], list[str]]:
    getters = [spec.render[name] for name, _ in orderby]

    def key(item: Any) -> list[str]:
        parts = []
        for get in getters:
            value = get(item)
            # Items without a value sort after all others (simulator choice).
            parts.append(value.casefold() if isinstance(value, str) else "\uffff")
        parts.append(str(spec.render["id"](item)))
        return parts

    return key


def next_link(base: str, path: str, options: dict[str, str], token: str) -> str:
    """An absolute `@odata.nextLink`: the same query options plus the new `$skiptoken`."""
    pairs = [(name, value) for name, value in options.items() if name != "$skiptoken"]
    pairs.append(("$skiptoken", token))
    query = "&".join(f"{name}={quote(value, safe=_SAFE)}" for name, value in pairs)
    return f"{base}{path}?{query}"


_SAFE = "$,'()/:@!*=;"


def run_collection(
    items: Sequence[Any],
    query: CollectionQuery,
    *,
    signer: TokenSigner,
    base_url: str,
    path: str,
    context: str,
    render: Callable[[Any, tuple[str, ...]], dict[str, Any]],
    select: tuple[str, ...],
) -> dict[str, Any]:
    """One page of `items` (already in default order) as Graph's collection body."""
    predicates = query.predicates
    if not predicates:
        matches = list(items)
    elif len(predicates) == 1:
        matches = [item for item in items if predicates[0](item)]
    else:
        matches = [item for item in items if all(p(item) for p in predicates)]
    key = _sort_key(query.spec, query.orderby)
    after = _open_skiptoken(signer, query.skiptoken) if query.skiptoken is not None else None
    if query.orderby:
        descending = query.orderby[0][1]
        keyed = sorted(((key(item), item) for item in matches), key=lambda pair: pair[0],
                       reverse=descending)
        matches = [item for _, item in keyed]
        start = 0
        if after is not None:
            keys = [k for k, _ in keyed]
            if descending:
                start = next((i for i, k in enumerate(keys) if k < after), len(keys))
            else:
                start = bisect_right(keys, after)
    else:
        # Default order is by object id, so the cursor is found by bisection.
        get_id = query.spec.render["id"]
        start = bisect_right(matches, after[-1], key=get_id) if after is not None else 0
    page = matches[start:start + query.top]
    body: dict[str, Any] = {"@odata.context": context}
    if query.count and query.skiptoken is None:
        body["@odata.count"] = len(matches)
    if start + query.top < len(matches):
        token = signer.seal("skip", {"after": key(page[-1])})
        body["@odata.nextLink"] = next_link(base_url, path, query.options, token)
    body["value"] = [render(item, select) for item in page]
    return body


def _open_skiptoken(signer: TokenSigner, token: str) -> list[str]:
    try:
        payload = signer.open("skip", token)
    except TokenError:
        # Chosen wording; Graph's paging tokens are opaque and edited ones are refused.
        raise GraphError(400, "Request_BadRequest", "Invalid Skip Token.") from None
    after = payload.get("after")
    if not isinstance(after, list) or not after or not all(isinstance(p, str) for p in after):
        raise GraphError(400, "Request_BadRequest", "Invalid Skip Token.")
    return after
