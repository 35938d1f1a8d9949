"""The user type for OData queries: JSON properties, `$filter` support, `$search`, defaults.

Operator support per property follows `includes/filter-directory-objects.md` in the Graph
docs (the table behind `concepts/aad-advanced-queries.md`; graph.md 2.1). Properties of
the v1.0 user type the simulator does not model are still selectable and come back as
`null` (or `[]` for collections), so a `$select` that works on Graph works here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from m365sim.directory.entity import (
    ANY,
    COUNT,
    ENDS,
    EQ,
    GE,
    IN,
    LE,
    NE,
    NOT,
    NULL,
    STARTS,
    EntitySpec,
    Prop,
    ops,
)
from m365sim.model import User

# Without $select Graph returns exactly these (graph.md 2.1; user-list.md).
DEFAULT_SELECT: tuple[str, ...] = (
    "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
    "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
)

# User.ReadBasic.All reads only the "basic profile" (permissions reference): display
# name, first and last name, mail, photo, UPN; plus the object id.
BASIC_PROFILE: frozenset[str] = frozenset(
    {"id", "displayName", "givenName", "surname", "mail", "userPrincipalName"}
)

# SharePoint-backed properties: Graph serves them for one user, never in a list (it answers
# 501 NotImplemented, as in microsoft-graph-docs-contrib#5637).
LIST_UNSUPPORTED: frozenset[str] = frozenset({
    "aboutMe", "birthday", "hireDate", "interests", "mySite", "pastProjects",
    "preferredName", "responsibilities", "schools", "skills",
})

_NULL_PROPERTIES = (
    "aboutMe", "ageGroup", "authorizationInfo", "city", "companyName",
    "consentProvidedForMinor", "country", "createdDateTime", "creationType",
    "customSecurityAttributes", "deletedDateTime", "department", "employeeHireDate",
    "employeeId", "employeeLeaveDateTime", "employeeOrgData", "employeeType",
    "externalUserState", "externalUserStateChangeDateTime", "faxNumber", "identityParentId",
    "isManagementRestricted", "isResourceAccount", "lastPasswordChangeDateTime",
    "legalAgeGroupClassification", "mailboxSettings", "mySite", "onPremisesDomainName",
    "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
    "onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "passwordPolicies",
    "passwordProfile", "postalCode", "preferredDataLocation", "preferredName", "print",
    "securityIdentifier", "showInAddressList", "signInActivity",
    "signInSessionsValidFromDateTime", "state", "streetAddress", "usageLocation",
)
_LIST_PROPERTIES = (
    "identities", "imAddresses", "interests", "licenseAssignmentStates",
    "onPremisesProvisioningErrors", "otherMails", "pastProjects", "provisionedPlans",
    "responsibilities", "schools", "serviceProvisioningErrors", "skills",
)


def _render_table() -> dict[str, Callable[[User], Any]]:
    table: dict[str, Callable[[User], Any]] = {}
    for name in _NULL_PROPERTIES:
        table[name] = lambda _user: None
    for name in _LIST_PROPERTIES:
        table[name] = lambda _user: []
    table.update({
        "id": lambda u: u.id,
        "displayName": lambda u: u.display_name,
        "givenName": lambda u: u.given_name,
        "surname": lambda u: u.surname,
        "userPrincipalName": lambda u: u.user_principal_name,
        "mail": lambda u: u.mail,
        "mailNickname": lambda u: u.mail_nickname,
        "jobTitle": lambda u: u.job_title,
        "officeLocation": lambda u: u.office_location,
        "preferredLanguage": lambda u: u.preferred_language,
        "businessPhones": lambda u: list(u.business_phones),
        "mobilePhone": lambda u: u.mobile_phone,
        "accountEnabled": lambda u: u.account_enabled,
        "proxyAddresses": lambda u: list(u.proxy_addresses),
        "onPremisesDistinguishedName": lambda u: u.on_premises_distinguished_name,
        "onPremisesSamAccountName": lambda u: u.on_premises_sam_account_name,
        "onPremisesUserPrincipalName": lambda u: u.on_premises_user_principal_name,
        "assignedPlans": lambda u: [dict(plan) for plan in u.assigned_plans],
        "assignedLicenses": lambda u: [dict(lic) for lic in u.assigned_licenses],
        "userType": lambda _user: "Member",
        # Non-nullable in the metadata: Graph shows its "unset" values.
        "birthday": lambda _user: "0001-01-01T00:00:00Z",
        "hireDate": lambda _user: "0001-01-01T00:00:00Z",
        "deviceEnrollmentLimit": lambda _user: 5,
    })
    return table


def _string(name: str, attr: str, default: frozenset[str], advanced: frozenset[str]) -> Prop:
    return Prop(name, "string", lambda u: getattr(u, attr), default, advanced)


_PLAN_ITEMS = {
    "serviceplanid": Prop("servicePlanId", "guid", lambda p: p.get("servicePlanId"),
                          ops(EQ), ops(NE)),
    "capabilitystatus": Prop("capabilityStatus", "string", lambda p: p.get("capabilityStatus"),
                             ops(EQ), ops(NE)),
    "service": Prop("service", "string", lambda p: p.get("service"), ops(EQ), ops(NE)),
}
_LICENSE_ITEMS = {
    "skuid": Prop("skuId", "guid", lambda lic: lic.get("skuId"), ops(EQ), ops(NE)),
}

_SORTABLE = ops(EQ, GE, LE, IN, STARTS)
USER_PROPS: dict[str, Prop] = {prop.name.lower(): prop for prop in (
    Prop("id", "string", lambda u: u.id, ops(EQ, IN), ops(NE, NOT)),
    _string("displayName", "display_name", ops(EQ, IN, STARTS), ops(NE, NOT, NULL)),
    _string("givenName", "given_name", _SORTABLE, ops(NE, NULL)),
    _string("surname", "surname", _SORTABLE, ops(NE, NULL)),
    _string("userPrincipalName", "user_principal_name", ops(EQ, LE, IN, STARTS),
            ops(NE, ENDS)),
    _string("mail", "mail", _SORTABLE, ops(NE, ENDS)),
    _string("mailNickname", "mail_nickname", _SORTABLE, ops(NE, NULL)),
    _string("jobTitle", "job_title", ops(EQ, GE, LE, IN), ops(NE, NULL)),
    _string("officeLocation", "office_location", ops(),
            ops(EQ, NE, GE, LE, IN, STARTS, NULL)),
    _string("preferredLanguage", "preferred_language", ops(),
            ops(EQ, NE, GE, LE, IN, STARTS, NULL)),
    _string("mobilePhone", "mobile_phone", ops(), ops(EQ, NE, GE, LE, IN, STARTS, NULL)),
    _string("onPremisesSamAccountName", "on_premises_sam_account_name", ops(),
            ops(EQ, NE, GE, LE, IN, STARTS)),
    _string("onPremisesUserPrincipalName", "on_premises_user_principal_name", _SORTABLE,
            ops(NE)),
    Prop("accountEnabled", "bool", lambda u: u.account_enabled, ops(EQ, IN),
         ops(NE, NOT, GE, LE)),
    Prop("businessPhones", "strings", lambda u: u.business_phones, ops(ANY, EQ), ops(NOT)),
    Prop("proxyAddresses", "strings", lambda u: u.proxy_addresses,
         ops(ANY, EQ, GE, LE, STARTS), ops(NE, NULL, ENDS, NOT)),
    Prop("assignedPlans", "objects", lambda u: u.assigned_plans, ops(ANY, EQ), ops(NOT),
         _PLAN_ITEMS),
    Prop("assignedLicenses", "objects", lambda u: u.assigned_licenses, ops(ANY, EQ),
         ops(NOT, COUNT), _LICENSE_ITEMS),
)}

USER_SPEC = EntitySpec(
    type_name="microsoft.graph.user",
    resource="User",
    entity_set="users",
    props=USER_PROPS,
    render=_render_table(),
    default_select=DEFAULT_SELECT,
    tokenized_search=frozenset({"displayName"}),
    searchable=frozenset({
        "displayName", "givenName", "surname", "mail", "userPrincipalName", "mailNickname",
        "jobTitle", "officeLocation", "mobilePhone", "onPremisesSamAccountName",
    }),
    orderable=frozenset({"displayName", "userPrincipalName"}),
    list_unsupported=LIST_UNSUPPORTED,
)
