"""Helpers the directory routes share: the caller, Graph JSON answers, not-found errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse

from m365sim.auth import Caller, authenticate
from m365sim.errors import GRAPH_JSON, GraphError

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

# Read permissions on users (graph.md 2.1; user-list.md). A higher permission implies
# these through auth.IMPLIED.
USER_READ_DELEGATED = ("User.ReadBasic.All", "User.Read.All", "Directory.Read.All")
USER_READ_APPLICATION = ("User.Read.All", "Directory.Read.All")
FULL_PROFILE = frozenset({"User.Read.All", "Directory.Read.All"})
# group-list.md / group-list-members.md / user-list-memberof.md (least to most privileged).
GROUP_READ = ("GroupMember.Read.All", "Group.Read.All", "Directory.Read.All")


def caller_of(sim: Simulator, request: Request) -> Caller:
    """The verified caller of a Graph request (GraphError 401 otherwise)."""
    return authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                        decode=sim.issuer.decode)


def basic_only(caller: Caller) -> bool:
    """Whether a delegated caller may read only the basic profile (User.ReadBasic.All)."""
    return caller.delegated and not (FULL_PROFILE & caller.permissions)


def graph_json(body: Any, status: int = 200, headers: dict[str, str] | None = None
               ) -> JSONResponse:
    """A Graph JSON answer with Graph's content type."""
    return JSONResponse(body, status_code=status, media_type=GRAPH_JSON, headers=headers)


def not_found(identifier: str) -> GraphError:
    """Graph's 404 for an unknown directory object (graph.md 0)."""
    return GraphError(404, "Request_ResourceNotFound",
                      f"Resource '{identifier}' does not exist or one of its queried "
                      f"reference-property objects are not present.")


def metadata(sim: Simulator, fragment: str) -> str:
    """An `@odata.context` URL on the simulator's host."""
    return f"{sim.base_url}/v1.0/$metadata#{fragment}"


def context_for(sim: Simulator, entity_set: str, select: tuple[str, ...],
                explicit: bool, entity: bool = False) -> str:
    """`@odata.context` for a collection or one entity, naming an explicit `$select`."""
    fragment = entity_set + (f"({','.join(select)})" if explicit and select else "")
    return metadata(sim, fragment + ("/$entity" if entity else ""))
