"""The admin UI's cluster page (several nodes): the nodes, live or gone, and which node holds
which job with its epoch and expiry. Offered only when `cluster.enabled`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from m365pbx.web.admin_ui.forms import HEADERS

if TYPE_CHECKING:
    from m365pbx.web.admin_ui.editing import Kit
    from m365pbx.web.admin_ui.routes import AdminUi


def add_cluster_routes(router: APIRouter, ui: AdminUi, kit: Kit) -> None:
    """Add the cluster page to the admin UI's router (404 on a single node)."""

    @router.get("/cluster")
    async def cluster(request: Request) -> Response:
        session = await kit.session_of(request)
        if session is None:
            return kit.to_login()
        if ui.cluster is None:
            return HTMLResponse("<h1>404: this installation runs on one node "
                                "(cluster.enabled is off)</h1>", status_code=404,
                                headers=HEADERS)
        view = await ui.cluster()
        return kit.page("cluster.html", view=view, **kit.common(session, "cluster"))
