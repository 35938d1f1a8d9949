"""Checks across objects: unique names and references that point at declared objects.

They run on plain data so that `load_config` can report them together with every other
problem, even when parts of the file are otherwise broken.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from m365pbx.config.errors import KeyPath, format_path

REFERENCE_ERROR_TYPE = "config_reference"
"""The pydantic error type whose `ctx["problems"]` holds (path, message) pairs."""

ReferenceProblem = tuple[KeyPath, str]


def reference_problems(data: Mapping[str, Any]) -> list[ReferenceProblem]:
    """Return every duplicate name and dangling reference in the tenants and connections."""
    problems: list[ReferenceProblem] = []
    tenants = list(_items(data, ("tenants",)))
    tenant_names = _unique(problems, tenants, "name", "tenant name", casefold=False)
    _unique(problems, tenants, "tenant_id", "tenant id", casefold=True)
    credentials = [
        item for path, tenant in tenants for item in _items(tenant, ("credentials",), path)
    ]
    # The store keys credentials by name across tenants, so names are unique file-wide.
    _unique(problems, credentials, "name", "credential name", casefold=False)
    accounts = [
        item for path, tenant in tenants for item in _items(tenant, ("service_accounts",), path)
    ]
    _unique(problems, accounts, "upn", "service account", casefold=True)
    for path, tenant in tenants:
        own = list(_items(tenant, ("credentials",), path))
        _unique(problems, own, "client_id", "client_id", casefold=True)
        names = [name for _, item in own if isinstance(name := item.get("name"), str)]
        for account_path, account in _items(tenant, ("service_accounts",), path):
            wanted = account.get("credential")
            if isinstance(wanted, str) and wanted not in names:
                where = f"tenant {tenant.get('name')!r}"
                problems.append(
                    ((*account_path, "credential"), _dangling("credential", wanted, names, where))
                )
    connections = list(_items(data, ("pbx_connections",)))
    _unique(problems, connections, "name", "connection name", casefold=False)
    for path, connection in connections:
        wanted = connection.get("tenant")
        if isinstance(wanted, str) and wanted not in tenant_names:
            problems.append(((*path, "tenant"), _dangling("tenant", wanted, tenant_names, "")))
    problems += webhook_mode_problems(data, tenants)
    problems += cluster_problems(data)
    return problems


def cluster_problems(data: Mapping[str, Any]) -> list[ReferenceProblem]:
    """Several nodes need PostgreSQL: SQLite is one file, one writer, on one machine."""
    cluster = data.get("cluster")
    if not isinstance(cluster, Mapping):
        return []
    if cluster.get("enabled") is not True:
        if cluster.get("transport", "database") != "database":
            return [(("cluster", "transport"),
                     f"transport {cluster.get('transport')!r} hands webhook notifications "
                     "from one node to another, and this is a single node: set "
                     "cluster.enabled: true (several nodes on PostgreSQL), or remove "
                     "cluster.transport")]
        return []
    problems: list[ReferenceProblem] = []
    database = data.get("database")
    url = database.get("url") if isinstance(database, Mapping) else None
    if isinstance(url, str) and url.strip().lower().startswith("sqlite"):
        problems.append((("cluster", "enabled"),
                         "several nodes cannot share a SQLite database (one file, one writer, "
                         "on one machine, and no row locks to decide who owns a job): set "
                         "database.url to postgresql+asyncpg://user:password@host/database, "
                         "or run one node with cluster.enabled: false"))
    return problems


def webhook_mode_problems(
    data: Mapping[str, Any], tenants: list[tuple[KeyPath, Mapping[str, Any]]]
) -> list[ReferenceProblem]:
    """`teams_to_pbx.mode: webhook` promises notifications only: it needs what they need."""
    section = data.get("teams_to_pbx")
    mode = section.get("mode") if isinstance(section, Mapping) else None
    if str(getattr(mode, "value", mode)).strip().lower() != "webhook":
        return []
    if data.get("public_url") in (None, ""):
        return [(("teams_to_pbx", "mode"),
                 "'webhook' needs public_url, the address at which Graph delivers "
                 "notifications; without one use 'auto' or 'polling' (both poll Graph)")]
    return [((*path, "service_accounts"),
             f"tenant {tenant.get('name')!r} has no service accounts, and with "
             "teams_to_pbx.mode 'webhook' its people would get no presence: Graph sends "
             "presence notifications only to delegated tokens. Add a service account, or use "
             "mode 'auto' (polls this tenant)")
            for path, tenant in tenants if not tenant.get("service_accounts")]


def _items(
    data: Mapping[str, Any], key: KeyPath, prefix: KeyPath = ()
) -> Iterator[tuple[KeyPath, Mapping[str, Any]]]:
    value = data.get(str(key[0])) if isinstance(data, Mapping) else None
    if isinstance(value, Sequence) and not isinstance(value, str):
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                yield (*prefix, *key, index), item


def _unique(
    problems: list[ReferenceProblem],
    items: list[tuple[KeyPath, Mapping[str, Any]]],
    field: str,
    what: str,
    *,
    casefold: bool,
) -> list[str]:
    seen: dict[str, KeyPath] = {}
    for path, item in items:
        value = item.get(field)
        if not isinstance(value, str):
            continue
        folded = value.casefold() if casefold else value
        if folded in seen:
            first = format_path(seen[folded])
            problems.append(((*path, field), f"{what} {value!r} is already declared at {first}"))
        else:
            seen[folded] = path
    return list(seen)


def _dangling(what: str, wanted: str, declared: list[str], where: str) -> str:
    place = f" in {where}" if where else ""
    if not declared:
        return f"names {what} {wanted!r}, but no {what}s are declared{place}"
    close = difflib.get_close_matches(wanted, declared, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(repr(name) for name in declared)
    return f"no {what} named {wanted!r}{place}{hint}; declared: {listed}"
