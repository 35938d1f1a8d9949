"""`GET /users/delta`: initial round, change rounds, removals, resets (graph.md 2.2).

Tokens are opaque and sealed (tokens.py). A `$skiptoken` carries the round (changes
after version `since`, up to the snapshot `until`) and the last id served; a
`$deltatoken` carries the version the client has seen, its `$select` and id filter,
when it was issued, and the tenant's delta epoch. Two documented failures:
a reset (control API) answers `410 Gone` with a `Location` to restart from, and a token
older than 7 days answers `410 syncStateNotFound` (concepts/delta-query-overview.md).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import Response

from m365sim.directory.common import basic_only, caller_of, graph_json, metadata
from m365sim.directory.odata_filter import BoolOp, Compare, parse_filter
from m365sim.directory.query import parse_select, query_options
from m365sim.directory.state import directory_state
from m365sim.directory.tokens import TokenError
from m365sim.directory.user_spec import USER_SPEC
from m365sim.errors import GraphError
from m365sim.model import Tenant, User

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

PAGE_SIZE = 200  # simulator choice; Graph does not document the delta page size
MAX_FILTER_IDS = 50
TOKEN_LIFETIME = timedelta(days=7)
_DELTA_OPTIONS = frozenset({"$select", "$filter", "$skiptoken", "$deltatoken"})


def _bad_token() -> GraphError:
    return GraphError(400, "Request_BadRequest", "The delta token or skip token is invalid.")


def _filter_ids(text: str) -> list[str]:
    """The ids of `id eq '...' or id eq '...'` (the only filter users delta supports)."""
    node = parse_filter(text)
    ids: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, BoolOp) and current.op == "or":
            stack.extend((current.right, current.left))
        elif (isinstance(current, Compare) and current.op == "eq" and len(current.path) == 1
              and current.path[0].lower() == "id" and current.value.kind == "string"):
            ids.append(str(current.value.value))
        else:
            raise GraphError(400, "Request_UnsupportedQuery",
                             "Unsupported or invalid query filter clause specified for "
                             "property of resource 'User'. Delta supports only 'id eq' "
                             "clauses joined with 'or'.")
    if len(ids) > MAX_FILTER_IDS:
        raise GraphError(400, "Request_UnsupportedQuery",
                         f"At most {MAX_FILTER_IDS} ids can be given in a delta filter.")
    return ids


class DeltaRequest:
    """One `/users/delta` call, resolved into the round it continues or starts."""

    def __init__(self, sim: Simulator, request: Request, tenant: Tenant) -> None:
        self.sim = sim
        self.tenant = tenant
        self.state = directory_state(sim)
        options = query_options(request)
        unsupported = sorted(set(options) - _DELTA_OPTIONS)
        if unsupported:
            # concepts/delta-query-overview.md: $top, $orderby, $expand, $search are not
            # supported on users delta (answered with 400: simulator choice).
            raise GraphError(400, "Request_UnsupportedQuery",
                             f"The query option '{unsupported[0]}' is not supported with "
                             f"delta queries on users.")
        self.minimal = "return=minimal" in request.headers.get("prefer", "").replace(" ", "")
        self.latest = False
        self.cursor: str | None = None
        if options.get("$skiptoken"):
            self.round = self._open("skip", options["$skiptoken"])
            self.cursor = self.round.get("after")
        elif options.get("$deltatoken"):
            if options["$deltatoken"].lower() == "latest":
                self.latest = True
                self.round = self._fresh(options)
            else:
                token = self._open("delta", options["$deltatoken"])
                self.round = {**token, "since": token["seen"],
                              "until": tenant.directory_version}
        else:
            self.round = self._fresh(options)

    def _fresh(self, options: dict[str, str]) -> dict[str, Any]:
        select = list(parse_select(USER_SPEC, options.get("$select")))
        ids = _filter_ids(options["$filter"]) if options.get("$filter") else None
        return {"since": None, "until": self.tenant.directory_version, "select": select,
                "ids": ids, "epoch": self.state.delta_epoch[self.tenant.id],
                "issued": self.sim.clock.now().timestamp()}

    def _open(self, kind: str, token: str) -> dict[str, Any]:
        try:
            payload = self.state.signer.open(kind, token)
        except TokenError:
            raise _bad_token() from None
        if payload.get("tenant") != self.tenant.id:
            raise _bad_token()
        if payload.get("epoch") != self.state.delta_epoch[self.tenant.id]:
            raise GraphError(410, "resyncRequired",
                             "The delta token is no longer valid: a full synchronization is "
                             "required.", headers={"Location": self._restart_url(payload)})
        issued = float(payload.get("issued", 0))
        if self.sim.clock.now().timestamp() - issued > TOKEN_LIFETIME.total_seconds():
            raise GraphError(410, "syncStateNotFound",
                             "The delta token has expired. Restart with a full synchronization.")
        return payload

    def _restart_url(self, payload: dict[str, Any]) -> str:
        parts = []
        if payload.get("select"):
            parts.append("$select=" + ",".join(payload["select"]))
        if payload.get("ids"):
            clause = " or ".join(f"id eq '{i}'" for i in payload["ids"])
            parts.append("$filter=" + quote(clause, safe="'$="))
        parts.append("$deltatoken=")
        return f"{self.sim.base_url}/v1.0/users/delta?" + "&".join(parts)

    def _candidates(self) -> list[User]:
        since, until = self.round["since"], self.round["until"]
        ids = self.round.get("ids")
        if since is None:
            users = self.state.ordered_users(self.tenant)
            if self.cursor is not None:
                users = users[bisect_right(users, self.cursor, key=lambda u: u.id):]
        else:
            users = sorted((u for u in self.tenant.users.values() if since < u.version <= until),
                           key=lambda u: u.id)
        if ids is not None:
            wanted = set(ids)
            users = [u for u in users if u.id in wanted]
        if self.cursor is not None and since is not None:
            users = [u for u in users if u.id > self.cursor]
        return users

    def _item(self, user: User, select: tuple[str, ...]) -> dict[str, Any]:
        since = self.round["since"]
        chosen = select
        if since is not None:
            change = self.state.changed_since(self.tenant, user, since)
            if user.deleted:
                return {"id": user.id, "@removed": {"reason": change.removed or "changed"}}
            if self.minimal and change.properties is not None:
                chosen = tuple(name for name in select if name in change.properties)
        body = USER_SPEC.to_json(user, chosen)
        body["id"] = user.id
        return body

    def answer(self, select: tuple[str, ...]) -> dict[str, Any]:
        """The body of this delta page."""
        body: dict[str, Any] = {"@odata.context": metadata(self.sim, "users")}
        base = f"{self.sim.base_url}/v1.0/users/delta"
        token_fields = {k: self.round[k] for k in ("select", "ids", "epoch", "issued")}
        token_fields["tenant"] = self.tenant.id
        if self.latest:
            body["value"] = []
            seal = self.state.signer.seal("delta", {**token_fields,
                                                    "seen": self.round["until"]})
            body["@odata.deltaLink"] = f"{base}?$deltatoken={seal}"
            return body
        users = self._candidates()
        page = users[:PAGE_SIZE]
        body["value"] = [self._item(user, select) for user in page]
        if len(users) > PAGE_SIZE:
            seal = self.state.signer.seal("skip", {
                **token_fields, "since": self.round["since"], "until": self.round["until"],
                "after": page[-1].id})
            body["@odata.nextLink"] = f"{base}?$skiptoken={seal}"
        else:
            seal = self.state.signer.seal("delta", {
                **token_fields, "issued": self.sim.clock.now().timestamp(),
                "seen": self.round["until"]})
            body["@odata.deltaLink"] = f"{base}?$deltatoken={seal}"
        return body


def register_delta_routes(app: FastAPI, sim: Simulator) -> None:
    """Add `/users/delta` (must be registered before `/users/{id}`)."""

    async def delta(request: Request) -> Response:
        caller = caller_of(sim, request)
        # user-delta.md: User.Read.All is the least privileged permission (both kinds).
        caller.require(delegated=("User.Read.All", "Directory.Read.All"),
                       application=("User.Read.All", "Directory.Read.All"))
        if basic_only(caller):
            raise GraphError(403, "Authorization_RequestDenied",
                             "Insufficient privileges to complete the operation.")
        query = DeltaRequest(sim, request, caller.tenant)
        select = tuple(query.round.get("select") or ()) or USER_SPEC.default_select
        return graph_json(query.answer(select))

    app.add_api_route("/v1.0/users/delta", delta, methods=["GET"])
    app.add_api_route("/v1.0/users/delta()", delta, methods=["GET"])
    app.add_api_route("/v1.0/users/microsoft.graph.delta()", delta, methods=["GET"])
