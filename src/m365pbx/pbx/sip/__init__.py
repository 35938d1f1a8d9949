"""SIP SIMPLE presence: PUBLISH PIDF for Teams → PBX, SUBSCRIBE dialog/presence for PBX → Teams.

A small asyncio user agent written for this purpose (no maintained Python library does
PUBLISH with ETags on asyncio; RFC 3903). `SipConnection` is the
PbxConnection; the other names are the library underneath, usable on their own.
"""

from m365pbx.pbx.sip.addressing import (
    AccountPolicy,
    Addressing,
    GatewayAccount,
    PersonalAccounts,
    UnaddressableUser,
)
from m365pbx.pbx.sip.connection import HeldPublication, SipConnection
from m365pbx.pbx.sip.counters import BadInputCounter
from m365pbx.pbx.sip.dialoginfo import (
    DialogEntry,
    DialogInfo,
    DialogTracker,
    dialog_info_document,
    line_state,
    parse_dialog_info,
)
from m365pbx.pbx.sip.digest import Challenge, Credentials, DigestError, DigestSession
from m365pbx.pbx.sip.message import Headers, SipMessage, SipRequest, SipResponse
from m365pbx.pbx.sip.options import SipOptions
from m365pbx.pbx.sip.parser import ParseLimits, SipParseError, StreamParser, parse_datagram
from m365pbx.pbx.sip.pidf import PhonePresence, parse_pidf, pidf_document
from m365pbx.pbx.sip.publication import Publication
from m365pbx.pbx.sip.retry import Backoff
from m365pbx.pbx.sip.subscription import Subscription
from m365pbx.pbx.sip.transactions import Timers, TransactionTimeout
from m365pbx.pbx.sip.useragent import BadCredentials, Leg, UaConfig, UserAgent
from m365pbx.pbx.sip.xmlsafe import XmlError, parse_xml

__all__ = [
    "AccountPolicy",
    "Addressing",
    "Backoff",
    "BadCredentials",
    "BadInputCounter",
    "Challenge",
    "Credentials",
    "DialogEntry",
    "DialogInfo",
    "DialogTracker",
    "DigestError",
    "DigestSession",
    "GatewayAccount",
    "Headers",
    "HeldPublication",
    "Leg",
    "ParseLimits",
    "PersonalAccounts",
    "PhonePresence",
    "Publication",
    "SipConnection",
    "SipMessage",
    "SipOptions",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "StreamParser",
    "Subscription",
    "Timers",
    "TransactionTimeout",
    "UaConfig",
    "UnaddressableUser",
    "UserAgent",
    "XmlError",
    "dialog_info_document",
    "line_state",
    "parse_datagram",
    "parse_dialog_info",
    "parse_pidf",
    "parse_xml",
    "pidf_document",
]
