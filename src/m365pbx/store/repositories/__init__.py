"""Typed async repositories, one per aggregate; each works inside the caller's session."""

from __future__ import annotations

from m365pbx.store.repositories.accounts import ServiceAccountRepository, ServiceAccountSpec
from m365pbx.store.repositories.admin_state import (
    AdminSessionRepository,
    MappingOverlayRepository,
    MatchingOverrideRepository,
)
from m365pbx.store.repositories.admin_users import AdminUserRepository
from m365pbx.store.repositories.api_clients import ApiClientRepository
from m365pbx.store.repositories.api_handoffs import (
    API_CHANNEL,
    ApiHandedOff,
    ApiHandoffRepository,
)
from m365pbx.store.repositories.api_shown import (
    SHOWN_CHANNEL,
    ShownRepository,
    ShownRow,
    shown_version,
)
from m365pbx.store.repositories.api_users import ApiUserRecord, ApiUserRepository
from m365pbx.store.repositories.audit import AuditRepository
from m365pbx.store.repositories.calendar_blocks import CalendarBlockRepository, StoredBlock
from m365pbx.store.repositories.contact_books import ContactBookRepository, StoredBook
from m365pbx.store.repositories.declarable import Change, DeclarableRepository
from m365pbx.store.repositories.declarations import Declarations, SyncReport, sync_declared
from m365pbx.store.repositories.handoffs import CHANNEL as HANDOFF_CHANNEL
from m365pbx.store.repositories.handoffs import HandedOff, HandoffRepository
from m365pbx.store.repositories.leases import FencedOut, LeaseRepository
from m365pbx.store.repositories.mailbox_subscriptions import (
    FoundMailboxSubscription,
    MailboxSubscriptionRecord,
    MailboxSubscriptionRepository,
)
from m365pbx.store.repositories.nodes import NodeRepository
from m365pbx.store.repositories.part_status import PartStatusRepository
from m365pbx.store.repositories.pbx_connections import PbxConnectionRepository, PbxConnectionSpec
from m365pbx.store.repositories.people import PeopleRepository, PersonRecord, ReplaceReport
from m365pbx.store.repositories.presence import (
    LastPresenceRepository,
    PresenceSessionRepository,
)
from m365pbx.store.repositories.rotation import rotate_secrets
from m365pbx.store.repositories.sip_publications import (
    SipPublicationRecord,
    SipPublicationRepository,
)
from m365pbx.store.repositories.subscriptions import SubscriptionRepository
from m365pbx.store.repositories.tenants import (
    CredentialRepository,
    CredentialSpec,
    TenantRepository,
    TenantSpec,
)

__all__ = [
    "API_CHANNEL",
    "HANDOFF_CHANNEL",
    "SHOWN_CHANNEL",
    "AdminSessionRepository",
    "AdminUserRepository",
    "ApiClientRepository",
    "ApiHandedOff",
    "ApiHandoffRepository",
    "ApiUserRecord",
    "ApiUserRepository",
    "AuditRepository",
    "CalendarBlockRepository",
    "Change",
    "ContactBookRepository",
    "CredentialRepository",
    "CredentialSpec",
    "DeclarableRepository",
    "Declarations",
    "FencedOut",
    "FoundMailboxSubscription",
    "HandedOff",
    "HandoffRepository",
    "LastPresenceRepository",
    "LeaseRepository",
    "MailboxSubscriptionRecord",
    "MailboxSubscriptionRepository",
    "MappingOverlayRepository",
    "MatchingOverrideRepository",
    "NodeRepository",
    "PartStatusRepository",
    "PbxConnectionRepository",
    "PbxConnectionSpec",
    "PeopleRepository",
    "PersonRecord",
    "PresenceSessionRepository",
    "ReplaceReport",
    "ServiceAccountRepository",
    "ServiceAccountSpec",
    "ShownRepository",
    "ShownRow",
    "SipPublicationRecord",
    "SipPublicationRepository",
    "StoredBlock",
    "StoredBook",
    "SubscriptionRepository",
    "SyncReport",
    "TenantRepository",
    "TenantSpec",
    "rotate_secrets",
    "shown_version",
    "sync_declared",
]
