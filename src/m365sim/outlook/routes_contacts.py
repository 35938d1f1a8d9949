"""Graph contact routes: contacts, contactFolders and contact delta (graph.md 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from m365sim.errors import GraphError
from m365sim.outlook import delta
from m365sim.outlook import query as q
from m365sim.outlook.access import CONTACTS_READ, Target, context_url, graph_json, target
from m365sim.outlook.contact_query import order, parse_filter, parse_search
from m365sim.outlook.model import ContactFolder
from m365sim.outlook.render import CONTACT_PROPERTIES, contact_json, folder_json, project
from m365sim.outlook.service import item_not_found

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

PREFIXES = ("/v1.0/users/{user}", "/v1.0/me")
FOLDER_PROPERTIES = frozenset({"id", "displayName", "parentFolderId"})
# The well-known name of the default contacts folder.
DEFAULT_FOLDER_NAME = "contacts"


def _folder(found: Target, folder_id: str) -> ContactFolder:
    box = found.mailbox
    if folder_id.casefold() == DEFAULT_FOLDER_NAME:
        return box.folders[box.default_folder_id]
    folder = box.folders.get(folder_id)
    if folder is None:
        if not folder_id.startswith("AAMk"):
            raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
        raise item_not_found()
    return folder


def register(app: FastAPI, sim: Simulator) -> None:
    """Add the contact routes."""

    def contacts_page(request: Request, found: Target, folder: ContactFolder,
                      segment: str) -> JSONResponse:
        opts = q.options(request)
        query = q.list_query(request, opts, CONTACT_PROPERTIES, "contact")
        contacts = [c for c in found.mailbox.contacts.values() if c.folder_id == folder.id]
        if "search" in opts and ("filter" in opts or "orderby" in opts):
            # As for messages, a search cannot be combined with $filter or $orderby.
            raise GraphError(400, "ErrorInvalidUrlQuery",
                             "The query parameter '$search' cannot be combined with "
                             "'$filter' or '$orderby'.")
        if "filter" in opts:
            matches = parse_filter(opts["filter"])
            contacts = [c for c in contacts if matches(c)]
        if "search" in opts:
            matches = parse_search(opts["search"])
            contacts = [c for c in contacts if matches(c)]
        if "orderby" in opts:
            contacts = order(contacts, opts["orderby"])
        items = [project(contact_json(c), query.select) for c in contacts]
        fragment = f"users('{found.user.id}')/{segment}"
        if query.select:
            fragment += "(" + ",".join(query.select) + ")"
        body = q.page(items, query, request, context=context_url(sim, fragment),
                      base_url=sim.base_url)
        return graph_json(body, headers=query.headers())

    async def list_contacts(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        box = found.mailbox
        return contacts_page(request, found, box.folders[box.default_folder_id], "contacts")

    async def folder_contacts(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        folder = _folder(found, str(request.path_params["folder_id"]))
        return contacts_page(request, found, folder,
                             f"contactFolders('{folder.id}')/contacts")

    async def get_contact(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        opts = q.options(request)
        contact_id = str(request.path_params["contact_id"])
        contact = found.mailbox.contacts.get(contact_id)
        if contact is None:
            if not contact_id.startswith("AAMk"):
                raise GraphError(400, "ErrorInvalidIdMalformed", "Id is malformed.")
            raise item_not_found()
        select = q.parse_select(opts.get("select"), CONTACT_PROPERTIES, "contact")
        context = context_url(sim, f"users('{found.user.id}')/contacts/$entity")
        return graph_json({"@odata.context": context,
                           **project(contact_json(contact), select)})

    async def list_folders(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        opts = q.options(request)
        query = q.list_query(request, opts, FOLDER_PROPERTIES, "contactFolder")
        box = found.mailbox
        # The collection holds the folders below the default Contacts folder.
        items = [project(folder_json(f), query.select) for f in box.folders.values()
                 if f.parent_id == box.default_folder_id]
        context = context_url(sim, f"users('{found.user.id}')/contactFolders")
        body = q.page(items, query, request, context=context, base_url=sim.base_url)
        return graph_json(body, headers=query.headers())

    async def get_folder(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        folder = _folder(found, str(request.path_params["folder_id"]))
        context = context_url(sim, f"users('{found.user.id}')/contactFolders/$entity")
        return graph_json({"@odata.context": context, **folder_json(folder)})

    async def contacts_delta(request: Request) -> JSONResponse:
        found = target(sim, request, CONTACTS_READ)
        folder = _folder(found, str(request.path_params["folder_id"]))
        opts = q.options(request)
        box = found.mailbox
        if "skiptoken" in opts:
            state = delta.decode(opts["skiptoken"], folder.id)
        elif "deltatoken" in opts:
            state = delta.next_round(box, delta.decode(opts["deltatoken"], folder.id))
        else:
            for name in ("filter", "search", "orderby", "top", "skip"):
                if name in opts:
                    raise GraphError(400, "BadRequest",
                                     f"The query option '${name}' is not supported with "
                                     "contact delta.")
            query = q.list_query(request, opts, CONTACT_PROPERTIES, "contact")
            state = delta.first_round(box, folder.id, query.select, max(query.page_size, 1))
        items, following, complete = delta.changes(box, state)
        link = "@odata.deltaLink" if complete else "@odata.nextLink"
        token = "$deltatoken" if complete else "$skiptoken"
        base = f"{sim.base_url}{request.url.path}"
        return graph_json({"@odata.context": context_url(sim, "Collection(contact)"),
                           "value": items, link: f"{base}?{token}={delta.encode(following)}"})

    for prefix in PREFIXES:
        app.add_api_route(f"{prefix}/contacts", list_contacts, methods=["GET"])
        app.add_api_route(f"{prefix}/contacts/{{contact_id}}", get_contact, methods=["GET"])
        for folders in ("contactFolders", "contactfolders"):
            base = f"{prefix}/{folders}"
            app.add_api_route(base, list_folders, methods=["GET"])
            app.add_api_route(f"{base}/{{folder_id}}", get_folder, methods=["GET"])
            app.add_api_route(f"{base}/{{folder_id}}/contacts", folder_contacts,
                              methods=["GET"])
            app.add_api_route(f"{base}/{{folder_id}}/contacts/delta", contacts_delta,
                              methods=["GET"])
