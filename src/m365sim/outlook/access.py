"""Who may read which mailbox, and the small request/response helpers the routes share.

Outlook's own errors apply on these endpoints: `ErrorAccessDenied` (403) for a missing
scope or another user's mailbox under a delegated token, `ErrorInvalidUser` (404) for an
unknown user, and Graph's 400 for `/me` under an application token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from starlette.requests import Request

from m365sim.auth import Caller, authenticate
from m365sim.errors import GRAPH_JSON, GraphError
from m365sim.outlook.model import Mailbox

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator


@dataclass(frozen=True)
class Needs:
    """The permissions that admit a request, per kind of token."""

    delegated: tuple[str, ...]
    application: tuple[str, ...]


# The basic calendar permission is Calendars.ReadBasic when delegated and
# Calendars.ReadBasic.All as an application permission (permissions reference).
CALENDAR_READ = Needs(("Calendars.Read", "Calendars.ReadBasic"),
                      ("Calendars.Read", "Calendars.ReadBasic.All"))
CONTACTS_READ = Needs(("Contacts.Read",), ("Contacts.Read",))
JSON_PAYLOAD_ERROR = ("Unable to read JSON request payload. Please ensure Content-Type header "
                      "is set and payload is of valid JSON format.")


def access_denied() -> GraphError:
    """Outlook's 403."""
    return GraphError(403, "ErrorAccessDenied",
                      "Access is denied. Check credentials and try again.")


@dataclass(frozen=True)
class Target:
    """The verified caller and the mailbox the request addresses."""

    caller: Caller
    user: User
    mailbox: Mailbox

    @property
    def tenant(self) -> Tenant:
        """The caller's (and the mailbox's) tenant."""
        return self.caller.tenant


def target(sim: Simulator, request: Request, needs: Needs) -> Target:
    """Authenticate, check the permission, and find the addressed mailbox."""
    caller = authenticate(request, tenants=sim.directory.tenants, now=sim.clock.now(),
                          decode=sim.issuer.decode)
    segment = request.path_params.get("user")
    if segment is None and not caller.delegated:
        raise GraphError(400, "BadRequest",
                         "/me request is only valid with delegated authentication flow.")
    caller.require(delegated=needs.delegated, application=needs.application,
                   code="ErrorAccessDenied",
                   message="Access is denied. Check credentials and try again.")
    user = caller.user if segment is None else caller.tenant.find_user(str(segment))
    if user is None:
        raise GraphError(404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid.")
    if caller.user is not None and caller.user.id != user.id:
        # Delegated access reaches another mailbox only through sharing or delegation,
        # which the simulator does not model (user-list-contacts.md, "two scenarios").
        raise access_denied()
    return Target(caller, user, sim.outlook.mailbox(caller.tenant.id, user.id))


def graph_json(body: dict[str, Any], status: int = 200,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """A Graph JSON answer."""
    return JSONResponse(body, status_code=status, headers=headers, media_type=GRAPH_JSON)


async def json_body(request: Request) -> Any:
    """The request's JSON body; Graph's 400 when it is missing, mistyped or malformed."""
    content_type = request.headers.get("content-type", "")
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise GraphError(400, "BadRequest", JSON_PAYLOAD_ERROR)
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, "BadRequest", JSON_PAYLOAD_ERROR) from None


def context_url(sim: Simulator, fragment: str) -> str:
    """An @odata.context URL on the simulator's base."""
    return f"{sim.base_url}/v1.0/$metadata#{fragment}"


def control_user(sim: Simulator, request: Request) -> tuple[Tenant, User]:
    """The tenant and user a control route names (ids, domains or UPNs)."""
    segment = str(request.path_params["tenant"])
    tenant = sim.directory.find_tenant(segment)
    if tenant is None:
        raise GraphError(404, "Request_ResourceNotFound", f"Tenant '{segment}' not found.")
    who = str(request.path_params["user"])
    user = tenant.find_user(who)
    if user is None:
        raise GraphError(404, "Request_ResourceNotFound",
                         f"Resource '{who}' does not exist or one of its queried "
                         "reference-property objects are not present.")
    return tenant, user


async def control_body(request: Request) -> dict[str, Any]:
    """A control-API JSON object body."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, "BadRequest", JSON_PAYLOAD_ERROR) from None
    if not isinstance(data, dict):
        raise GraphError(400, "BadRequest", "The body must be a JSON object.")
    return data
