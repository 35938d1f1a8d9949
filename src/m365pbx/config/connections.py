"""PBX connections: one model per kind, told apart by `kind`, with kind-specific settings."""

from __future__ import annotations

import string
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import AfterValidator, BaseModel, Field, field_validator, model_validator

from m365pbx.config.durations import Duration
from m365pbx.config.fields import MODEL_CONFIG, Slug
from m365pbx.config.mapping import MappingDocument
from m365pbx.config.secrets import Secret

SIP_DEFAULT_PORT = 5060
ASTERISK_DEFAULT_PORT = 5038  # the AMI's usual port


def check_match_rule(rule: str) -> str:
    """Accept a matching rule PBXFIELD=MSFIELD whose Microsoft field m365pbx can read."""
    # The matching module owns the rule syntax and field names; imported when first needed.
    from m365pbx.core.matching.rules import parse_rule
    from m365pbx.errors import UserInputError

    try:
        parse_rule(rule)
    except UserInputError as exc:
        raise ValueError(exc.message) from None
    return rule.strip()


MatchRule = Annotated[str, AfterValidator(check_match_rule)]


class Matching(BaseModel):
    """How PBX users are matched with Microsoft users."""

    model_config = MODEL_CONFIG

    rules: list[MatchRule] = Field(
        default_factory=lambda: ["cn=displayName"],
        min_length=1,
        description="rules PBXFIELD=MSFIELD tried in order, e.g. cn=displayName, email=mail",
    )
    strip_domain: bool = Field(
        default=False, description="compare addresses without their @domain part"
    )
    casefold: bool = Field(default=True, description="compare without regard to case")
    unicode_normalize: bool = Field(
        default=True, description="compare Unicode text in normal form (é written two ways)"
    )
    phone_region: str | None = Field(
        default=None, description="region for phone numbers without country code, e.g. DE"
    )

    @field_validator("phone_region")
    @classmethod
    def _check_region(cls, region: str | None) -> str | None:
        if region is None:
            return None
        upper = region.strip().upper()
        if upper not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("expected a two-letter region code such as DE, AT, CH, GB or US")
        return upper


class Transport(StrEnum):
    """SIP transport to the presence server."""

    UDP = "udp"
    TCP = "tcp"


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, port = text.strip(), default_port
    if host.startswith("["):  # [IPv6]:port
        inside, _, rest = host[1:].partition("]")
        host, port_text = inside, rest.removeprefix(":")
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    else:
        port_text = ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError("expected host or host:port with a port from 1 to 65535")
        port = int(port_text)
    if not host or any(char.isspace() for char in host):
        raise ValueError("expected host or host:port, e.g. sip.example.com:5060")
    return host, port


def _placeholders(template: str) -> set[str]:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        raise ValueError("unbalanced { or } in the template") from None
    bad = sorted(name for name in names if not name.isidentifier())
    if bad:
        raise ValueError(f"{{{bad[0]}}} is not a field name")
    return names


class PersonalSipAccounts(BaseModel):
    """Digest credentials of each person, filled from their PBX user fields."""

    model_config = MODEL_CONFIG

    username_template: str = Field(
        default="{extension}", description="the person's digest user name, e.g. {extension}"
    )
    password_field: str = Field(
        default="sip_password",
        description="the PBX user field holding the person's SIP password",
    )

    @field_validator("username_template")
    @classmethod
    def _check_username(cls, value: str) -> str:
        if not _placeholders(value):
            raise ValueError("the template needs a PBX user field such as {extension}")
        return value

    @field_validator("password_field")
    @classmethod
    def _check_field(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError("a PBX user field name such as sip_password")
        return value


class SipSettings(BaseModel):
    """Settings of a SIP presence server connection (PUBLISH/SUBSCRIBE)."""

    model_config = MODEL_CONFIG

    server: str = Field(description="presence server as host:port (port 5060 if left out)")
    transport: Transport = Field(default=Transport.UDP, description="'udp' or 'tcp'")
    listen_port: int = Field(
        default=0,
        ge=0,
        le=65_535,
        description="local port m365pbx sends from and receives the server's NOTIFYs on "
        "(UDP, or the TCP listener); 0: any free port. Fix it where a firewall needs it",
    )
    domain: str = Field(description="SIP domain of the users' addresses, e.g. pbx.example.com")
    uri_template: str = Field(
        default="sip:{extension}@{domain}",
        description="how a user's SIP address is built: {domain}, {key} (the PBX short "
        "name) and any PBX user field such as {extension}",
    )
    uri_field: str | None = Field(
        default=None,
        description="a PBX user field that holds the SIP address already (e.g. sip); "
        "replaces uri_template",
    )
    username: str | None = Field(default=None, description="digest user name, if required")
    password: Secret | None = Field(default=None, description="digest password, if required")
    personal_accounts: PersonalSipAccounts | None = Field(
        default=None,
        description="each person signs in as themselves, with credentials from their PBX "
        "user fields (instead of username/password)",
    )
    watch_line_state: bool = Field(
        default=True, description="subscribe to each person's dialog state (calls → Teams)"
    )
    watch_presence: bool = Field(
        default=False,
        description="subscribe to the presence people set on their phones (away/dnd → Teams)",
    )
    publish_expires: Duration = Field(
        default=timedelta(minutes=10),
        description="lifetime of a PUBLISH (refreshed before it ends); bounds how long a "
        "publication orphaned by a crash stays",
    )
    subscribe_expires: Duration = Field(
        default=timedelta(minutes=10), description="lifetime of a SUBSCRIBE (refreshed)"
    )

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str) -> str:
        _split_host_port(value, SIP_DEFAULT_PORT)
        return value.strip()

    @field_validator("uri_template")
    @classmethod
    def _check_template(cls, value: str) -> str:
        names = _placeholders(value)
        if not names - {"domain"}:
            raise ValueError("the template needs a PBX user field such as {extension} or "
                             "{key}, e.g. sip:{extension}@{domain}")
        if not value.startswith(("sip:", "sips:")):
            raise ValueError("a SIP address starts with 'sip:' or 'sips:'")
        return value

    @field_validator("publish_expires", "subscribe_expires")
    @classmethod
    def _check_expires(cls, value: timedelta) -> timedelta:
        # RFC 3903/6665 leave the range to the server; below a minute the refreshes would be
        # most of the traffic, above a day a crash leaves stale state for too long.
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError("must lie between 1 minute and 1 day")
        return value

    @model_validator(mode="after")
    def _password_needs_username(self) -> SipSettings:
        if self.password is not None and self.username is None:
            raise ValueError("a password is given without a username")
        if self.personal_accounts is not None and self.username is not None:
            raise ValueError("give either username/password (one account for everyone) or "
                             "personal_accounts, not both")
        return self

    @property
    def host(self) -> str:
        """Host of the presence server."""
        return _split_host_port(self.server, SIP_DEFAULT_PORT)[0]

    @property
    def port(self) -> int:
        """Port of the presence server."""
        return _split_host_port(self.server, SIP_DEFAULT_PORT)[1]


class AsteriskSettings(BaseModel):
    """Settings of an Asterisk Manager Interface (AMI) connection."""

    model_config = MODEL_CONFIG

    host: str = Field(description="host name or address of the Asterisk server")
    port: int = Field(default=ASTERISK_DEFAULT_PORT, ge=1, le=65535, description="AMI port")
    username: str = Field(description="AMI user name (manager.conf)")
    secret: Secret = Field(description="AMI secret of that user")
    tls: bool = Field(default=False, description="speak TLS to the AMI (manager.conf tlsenable)")
    ca_file: Path | None = Field(
        default=None, description="CA certificates (PEM) the AMI's TLS certificate is checked "
        "against; default: the system's")
    extension_field: str = Field(
        default="extension",
        description="the PBX user field holding the extension; users without it use their key",
    )
    line_device: str = Field(
        default="PJSIP/{extension}",
        description="the phone's device whose state is the person's line state (calls → Teams)",
    )
    custom_device: str = Field(
        default="Custom:{extension}-teams",
        description="the custom device m365pbx sets from Teams (part of the hint that lights "
        "BLFs); empty: none",
    )
    presence_provider: str = Field(
        default="CustomPresence:{extension}",
        description="the presence state m365pbx sets from Teams (with the note); empty: none",
    )
    dnd_family: str = Field(
        default="DND",
        description="AstDB family whose <extension> key means Do Not Disturb (FreePBX *76); "
        "empty: DND on phones is not followed",
    )
    dnd_poll_interval: Duration = Field(
        default=timedelta(seconds=15),
        description="how often AstDB DND is read (FreePBX's Custom:DND<extension> device "
        "makes it read at once)",
    )
    keepalive_interval: Duration = Field(
        default=timedelta(seconds=20),
        description="how often the AMI is pinged; no answer in 10 s: connect again",
    )

    @field_validator("line_device", "custom_device", "presence_provider")
    @classmethod
    def _check_device(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        unknown = _placeholders(value) - {"extension", "key"}
        if unknown:
            raise ValueError(f"{{{sorted(unknown)[0]}}} is not known here: use {{extension}} "
                             "or {key}")
        if ":" not in value and "/" not in value:
            raise ValueError("a device name such as PJSIP/{extension} or "
                             "Custom:{extension}-teams")
        return value

    @field_validator("line_device")
    @classmethod
    def _line_is_not_ours(cls, value: str) -> str:
        # Loop guard: a line read from a device m365pbx writes would echo Teams back.
        if value.casefold().startswith(("custom:", "custompresence:", "stasis:")):
            raise ValueError("the line state is read from the phone's device (e.g. "
                             "PJSIP/{extension}), never from a Custom: device")
        return value

    @field_validator("dnd_poll_interval")
    @classmethod
    def _check_dnd_poll(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError("must lie between 1 second and 1 hour")
        return value

    @field_validator("keepalive_interval")
    @classmethod
    def _check_keepalive(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("must lie between 1 second and 10 minutes")
        return value


class ApiSettings(BaseModel):
    """The built-in presence API needs no settings: PBX apps connect to m365pbx."""

    model_config = MODEL_CONFIG


class PersonSwitches(BaseModel):
    """Switches for some people of one connection; an unset switch keeps the connection's."""

    model_config = MODEL_CONFIG

    people: list[str] = Field(
        min_length=1,
        description="the people these switches are for: PBX user keys (h323 name or "
        "extension) or Teams sign-in names (userPrincipalName)",
    )
    push_line_state_to_teams: bool | None = Field(
        default=None, description="show their calls as 'In a call' in Teams"
    )
    push_pbx_presence_to_teams: bool | None = Field(
        default=None, description="show away/busy/dnd they set in the PBX as their Teams status"
    )
    push_pbx_note_to_teams: bool | None = Field(
        default=None, description="show their PBX note as their Teams status message"
    )
    only_replace_available_busy: bool | None = Field(
        default=None, description="a call shows in Teams only while they are Available or Busy"
    )
    pbx_wins: bool | None = Field(
        default=None, description="write PBX presence even over a status they chose in Teams"
    )

    @field_validator("people")
    @classmethod
    def _names_are_not_blank(cls, value: list[str]) -> list[str]:
        names = [name.strip() for name in value]
        if any(not name for name in names):
            raise ValueError("a person is named by a PBX user key or a Teams sign-in name, "
                             "not an empty string")
        return names


class CalendarSettings(BaseModel):
    """Calendar → PBX presence of one connection's people (docs/calendar.md)."""

    model_config = MODEL_CONFIG

    enabled: bool = Field(
        default=False,
        description="show the people's calendar events (meetings, out of office) in the PBX; "
        "needs a credential with calendars.read",
    )
    window: Duration = Field(
        default=timedelta(hours=36),
        description="how far ahead the events are read; each start and end is a timer",
    )
    poll_interval: Duration = Field(
        default=timedelta(minutes=5),
        description="how often each person's calendar is read again (changes, moves, "
        "cancellations show within this time)",
    )
    show_tentative: bool = Field(default=True, description="tentative events show as meetings")
    show_working_elsewhere: bool = Field(
        default=False, description="events shown as 'working elsewhere' show (as away)"
    )
    all_day_events: bool = Field(
        default=False, description="busy or tentative all-day events show as meetings"
    )
    out_of_office: bool = Field(
        default=True, description="out-of-office events, all-day or timed, show (as away)"
    )
    automatic_replies: bool = Field(
        default=False,
        description="the mailbox's automatic replies (out of office), scheduled or switched "
        "on, show as out-of-office events (away); needs MailboxSettings.Read for the app",
    )
    subject_as_note: bool = Field(
        default=True, description="the event's subject as the PBX note (never for private ones)"
    )
    private_note: str = Field(
        default="Private appointment",
        max_length=200,
        description="the PBX note of a private or confidential event; empty: none",
    )

    @field_validator("window")
    @classmethod
    def _check_window(cls, value: timedelta) -> timedelta:
        if not timedelta(hours=1) <= value <= timedelta(days=7):
            raise ValueError("must lie between 1 hour and 7 days")
        return value

    @field_validator("poll_interval")
    @classmethod
    def _check_poll(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError("must lie between 1 minute and 1 day")
        return value

    @model_validator(mode="after")
    def _window_outlasts_reads(self) -> CalendarSettings:
        if self.window <= self.poll_interval:
            raise ValueError("window must be longer than poll_interval, or events would "
                             "start before they are read")
        return self


class ContactsSettings(BaseModel):
    """Contact search and caller lookup for one connection's people (docs/contacts.md)."""

    model_config = MODEL_CONFIG

    enabled: bool = Field(
        default=False,
        description="let PBX apps search contacts and look up callers' names for this "
        "connection's people; needs a credential with contacts.read",
    )
    personal: bool = Field(default=True, description="each person's own Outlook contacts")
    directory: bool = Field(
        default=True, description="the organisation's users with their phones and mail"
    )
    organisation: bool = Field(
        default=False,
        description="organisational contacts (/contacts); needs OrgContact.Read.All",
    )
    phone_region: str | None = Field(
        default=None,
        description="region for numbers written without country code, e.g. DE; "
        "default: matching.phone_region",
    )
    poll_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="how often each person's contacts are read again (changes show within it)",
    )
    notifications: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: change notifications on each person's contacts when public_url "
        "is set (read at once on a change, and daily), else poll_interval; off: always "
        "poll_interval",
    )

    @field_validator("phone_region")
    @classmethod
    def _check_region(cls, region: str | None) -> str | None:
        if region is None:
            return None
        upper = region.strip().upper()
        if upper not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("expected a two-letter region code such as DE, AT, CH, GB or US")
        return upper

    @field_validator("poll_interval")
    @classmethod
    def _check_poll(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=1):
            raise ValueError("must lie between 1 minute and 1 day")
        return value


class _ConnectionBase(BaseModel):
    model_config = MODEL_CONFIG

    name: Slug = Field(description="short unique name of the connection, e.g. 'office-sip'")
    kind: str = Field(description="the kind of PBX: 'api', 'sip' or 'asterisk'")
    tenant: str = Field(description="name of the tenant whose users this PBX serves")
    push_line_state_to_teams: bool = Field(
        default=True, description="show calls on the PBX as 'In a call' in Teams"
    )
    push_pbx_presence_to_teams: bool = Field(
        default=True, description="show away/busy/dnd set in the PBX as the Teams status"
    )
    only_replace_available_busy: bool = Field(
        default=False,
        description="a call shows in Teams only while the person is Available or Busy there",
    )
    pbx_wins: bool = Field(
        default=False,
        description="write PBX presence to Teams even over a status the person chose in Teams",
    )
    push_pbx_note_to_teams: bool = Field(
        default=False,
        description="show the note set in the PBX as the person's Teams status message "
        "(never over a message they typed in Teams)",
    )
    call_end_hold_down: Duration = Field(
        default=timedelta(seconds=1),
        description="how long the end of a call waits, so a transfer does not flap Teams",
    )
    pbx_hold_down: Duration | None = Field(
        default=None,
        description="at least this long between two PBX writes for one person (the newest "
        "state follows when it ends); none: every change at once",
    )
    per_person: list[PersonSwitches] = Field(
        default_factory=list,
        description="switches for some people that differ from the connection's",
    )
    matching: Matching = Field(default_factory=Matching, description="how users are matched")
    mapping: MappingDocument = Field(
        default=None, description="mapping overrides for this connection"
    )
    calendar: CalendarSettings = Field(
        default_factory=CalendarSettings,
        description="calendar events of this connection's people as PBX presence",
    )
    contacts: ContactsSettings = Field(
        default_factory=ContactsSettings,
        description="contact search and caller lookup for this connection's people",
    )
    users_file: Path | None = Field(
        default=None,
        description="the PBX's users as a CSV or JSON export (as for 'm365pbx match --pbx'), "
        "for PBXs that cannot list them (SIP); read again at every directory sync",
    )

    @model_validator(mode="after")
    def _contacts_region(self) -> _ConnectionBase:
        if self.contacts.enabled and not (self.contacts.phone_region
                                          or self.matching.phone_region):
            raise ValueError("contacts need a region for numbers written without country "
                             "code: set contacts.phone_region (or matching.phone_region), "
                             "e.g. DE")
        return self

    @model_validator(mode="after")
    def _each_person_once(self) -> _ConnectionBase:
        seen: dict[str, int] = {}
        for number, entry in enumerate(self.per_person, 1):
            for name in entry.people:
                first = seen.setdefault(name.casefold(), number)
                if first != number:
                    raise ValueError(f"{name!r} is named in per_person entries {first} and "
                                     f"{number}; name each person once")
        return self

    def switches_for(self, names: Iterable[str]) -> PersonSwitches | None:
        """The per_person entry naming any of `names` (compared without case), if any."""
        wanted = {name.casefold() for name in names if name}
        for entry in self.per_person:
            if any(name.casefold() in wanted for name in entry.people):
                return entry
        return None


class SipConnection(_ConnectionBase):
    """A SIP SIMPLE presence server (PUBLISH PIDF, SUBSCRIBE to dialog state)."""

    kind: Literal["sip"] = Field(description="the kind of PBX: 'api', 'sip' or 'asterisk'")
    settings: SipSettings = Field(description="server, transport, domain, address template")


class ApiConnection(_ConnectionBase):
    """The built-in REST/WebSocket presence API that PBX apps connect to."""

    kind: Literal["api"] = Field(description="the kind of PBX: 'api', 'sip' or 'asterisk'")
    settings: ApiSettings = Field(default_factory=ApiSettings, description="none needed")


class AsteriskConnection(_ConnectionBase):
    """An Asterisk server reached through its Manager Interface (AMI)."""

    kind: Literal["asterisk"] = Field(description="the kind of PBX: 'api', 'sip' or 'asterisk'")
    settings: AsteriskSettings = Field(description="AMI host, port, username and secret")


PbxConnection = Annotated[
    SipConnection | ApiConnection | AsteriskConnection, Field(discriminator="kind")
]
"""One configured PBX adapter instance; `kind` selects the model and its settings."""

CONNECTION_KINDS: dict[str, type[_ConnectionBase]] = {
    "api": ApiConnection,
    "sip": SipConnection,
    "asterisk": AsteriskConnection,
}
