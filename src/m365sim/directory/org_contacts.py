"""Organisational contacts: `GET /contacts` and `/contacts/{id}` (orgcontact-list.md).

Mail-enabled contacts of the tenant's directory (people outside it, like a supplier's
hotline). They are kept beside the simulator (keyed weakly by it), so the shared model
needs no field. Permissions: OrgContact.Read.All or Directory.Read.All (delegated or
application). `$select`, `$top`, `$filter` (eq/startswith on names and mail) and paging
work as for users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from fastapi import FastAPI, Request
from fastapi.responses import Response

from m365sim.directory.common import caller_of, context_for, graph_json, not_found
from m365sim.directory.entity import EQ, IN, NE, NOT, NULL, STARTS, EntitySpec, Prop, ops
from m365sim.directory.query import parse_collection_query, parse_select, run_collection
from m365sim.directory.state import directory_state
from m365sim.model import new_id

if TYPE_CHECKING:
    from m365sim.model import Tenant
    from m365sim.simulator import Simulator

ORG_CONTACT_READ = ("OrgContact.Read.All", "Directory.Read.All")


@dataclass
class OrgContact:
    """One organisational contact."""

    id: str
    display_name: str
    given_name: str | None = None
    surname: str | None = None
    mail: str | None = None
    company_name: str | None = None
    job_title: str | None = None
    department: str | None = None
    # (type, number): business, businessFax, mobile (resources/phone.md).
    phones: list[tuple[str, str]] = field(default_factory=list)

    @property
    def mail_nickname(self) -> str | None:
        """The part of the mail address before the @."""
        return self.mail.partition("@")[0] if self.mail else None


def _name_prop(name: str, attribute: str) -> Prop:
    return Prop(name, "string", lambda c: getattr(c, attribute), ops(EQ, IN, STARTS),
                ops(NE, NOT, NULL))


ORG_CONTACT_SPEC = EntitySpec(
    type_name="microsoft.graph.orgContact",
    resource="OrgContact",
    entity_set="contacts",
    props={prop.name.lower(): prop for prop in (
        Prop("id", "string", lambda c: c.id, ops(EQ, IN), ops(NE, NOT)),
        _name_prop("displayName", "display_name"),
        _name_prop("givenName", "given_name"),
        _name_prop("surname", "surname"),
        _name_prop("mail", "mail"),
        _name_prop("mailNickname", "mail_nickname"),
    )},
    render={
        "id": lambda c: c.id,
        "deletedDateTime": lambda c: None,
        "addresses": lambda c: [],
        "companyName": lambda c: c.company_name,
        "department": lambda c: c.department,
        "displayName": lambda c: c.display_name,
        "givenName": lambda c: c.given_name,
        "jobTitle": lambda c: c.job_title,
        "mail": lambda c: c.mail,
        "mailNickname": lambda c: c.mail_nickname,
        "onPremisesSyncEnabled": lambda c: None,
        "onPremisesLastSyncDateTime": lambda c: None,
        "onPremisesProvisioningErrors": lambda c: [],
        "phones": lambda c: [{"type": kind, "number": number} for kind, number in c.phones],
        "proxyAddresses": lambda c: [f"SMTP:{c.mail}"] if c.mail else [],
        "surname": lambda c: c.surname,
    },
    default_select=("id", "deletedDateTime", "addresses", "companyName", "department",
                    "displayName", "givenName", "jobTitle", "mail", "mailNickname",
                    "onPremisesSyncEnabled", "onPremisesLastSyncDateTime",
                    "onPremisesProvisioningErrors", "phones", "proxyAddresses", "surname"),
    searchable=frozenset({"displayName", "mail", "mailNickname"}),
    orderable=frozenset({"displayName"}),
)

_CONTACTS: WeakKeyDictionary[Simulator, dict[str, dict[str, OrgContact]]] = WeakKeyDictionary()


def org_contacts(sim: Simulator, tenant: Tenant) -> dict[str, OrgContact]:
    """The tenant's organisational contacts by id (made empty on first use)."""
    return _CONTACTS.setdefault(sim, {}).setdefault(tenant.id, {})


def add_org_contact(sim: Simulator, tenant: Tenant, spec: Mapping[str, Any]) -> OrgContact:
    """Create an organisational contact from `display_name`, `mail`, `phones`, ..."""
    phones = [(str(p.get("type", "business")), str(p["number"])) if isinstance(p, Mapping)
              else ("business", str(p)) for p in spec.get("phones") or ()]
    contact = OrgContact(
        id=str(spec.get("id") or new_id()), display_name=str(spec["display_name"]),
        given_name=spec.get("given_name"), surname=spec.get("surname"),
        mail=spec.get("mail"), company_name=spec.get("company_name"),
        job_title=spec.get("job_title"), department=spec.get("department"), phones=phones)
    org_contacts(sim, tenant)[contact.id] = contact
    return contact


def remove_org_contact(sim: Simulator, tenant: Tenant, contact_id: str) -> bool:
    """Delete an organisational contact; return whether it existed."""
    return org_contacts(sim, tenant).pop(contact_id, None) is not None


def register_org_contact_routes(app: FastAPI, sim: Simulator) -> None:
    """Add `/contacts` and `/contacts/{id}`."""

    @app.get("/v1.0/contacts")
    async def contacts(request: Request) -> Response:
        caller = caller_of(sim, request)
        caller.require(delegated=ORG_CONTACT_READ, application=ORG_CONTACT_READ)
        query = parse_collection_query(request, ORG_CONTACT_SPEC)
        items = sorted(org_contacts(sim, caller.tenant).values(), key=lambda c: c.id)
        return graph_json(run_collection(
            items, query, signer=directory_state(sim).signer, base_url=sim.base_url,
            path="/v1.0/contacts",
            context=context_for(sim, "contacts", query.select, bool(query.select)),
            render=ORG_CONTACT_SPEC.to_json,
            select=query.select or ORG_CONTACT_SPEC.default_select))

    @app.get("/v1.0/contacts/{contact_id}")
    async def contact(contact_id: str, request: Request) -> Response:
        caller = caller_of(sim, request)
        caller.require(delegated=ORG_CONTACT_READ, application=ORG_CONTACT_READ)
        found = org_contacts(sim, caller.tenant).get(contact_id)
        if found is None:
            raise not_found(contact_id)
        select = parse_select(ORG_CONTACT_SPEC, request.query_params.get("$select"))
        body: dict[str, Any] = {
            "@odata.context": context_for(sim, "contacts", select, bool(select), entity=True)}
        body.update(ORG_CONTACT_SPEC.to_json(found, select or ORG_CONTACT_SPEC.default_select))
        return graph_json(body)
