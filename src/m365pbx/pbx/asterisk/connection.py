"""AsteriskConnection: the PbxConnection for Asterisk (and FreePBX, Issabel) over AMI.

Teams → Asterisk: each person's PBX presence becomes a custom device state
(`Custom:<ext>-teams`, which a hint joins to the phone so BLFs light) and a presence state
(`CustomPresence:<ext>`), both through `Setvar` on DEVICE_STATE()/PRESENCE_STATE().
Asterisk → Teams: line state from `DeviceStateChange` of the phones' own devices
(`PJSIP/<ext>`) only, never of the Custom: devices we write ourselves (loop guard), and
DND from AstDB `DND/<ext>` (FreePBX's *76/*78), read every `dnd_poll_interval` and at
once when FreePBX's `Custom:DND<ext>` changes. After every (re)connect both ways are
synced again: the phones' states are read (DeviceStateList), DND is read, and what
Asterisk shows of ours (DeviceStateList, PresenceStateList) is compared with what we want
and repaired. A probe checks that call events really arrive (manager.conf `read=`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.asterisk.client import (
    AmiClient,
    AmiConnectionError,
    AmiError,
    AmiPermissionError,
)
from m365pbx.pbx.asterisk.options import AsteriskOptions
from m365pbx.pbx.asterisk.problems import Problems
from m365pbx.pbx.asterisk.states import (
    device_state_for,
    encode_presence,
    line_state_of,
    presence_value,
)
from m365pbx.pbx.asterisk.users import parse_callerid
from m365pbx.pbx.asterisk.wire import AmiMessage
from m365pbx.pbx.base import (
    ConnectionState,
    ConnectionStatus,
    LineStateEvent,
    PbxEvent,
    PbxPresenceEvent,
    PbxUser,
)
from m365pbx.pbx.sip.watching import EventQueue

__all__ = ["AsteriskConnection", "UnaddressableUser"]

log = logging.getLogger(__name__)
PROBE_DEVICE = "Custom:m365pbx-probe"


class UnaddressableUser(ValueError):
    """A user's Asterisk names cannot be made from the templates (a field is missing)."""


@dataclass(slots=True)
class _Person:
    user: PbxUser
    line_device: str
    custom_device: str
    provider: str
    dnd_key: str
    dnd_device: str
    presence: PbxPresence = PbxPresence.ONLINE
    note: str = ""
    touched: bool = False  # set_presence was called: ours to keep right in Asterisk


class AsteriskConnection:
    """A PbxConnection that writes device/presence states and reads line state and DND."""

    def __init__(self, name: str, options: AsteriskOptions, *,
                 now: Callable[[], datetime] | None = None) -> None:
        self.name = name
        self.options = options
        self._now = now or (lambda: datetime.now(UTC))
        self.client = AmiClient(options.ami)
        self.client.on_event = self._on_event
        self.client.on_connected = self._resync
        self.client.on_state = self._update_status
        self.problems = Problems()
        self.unaddressable: dict[str, str] = {}
        self._people: dict[str, _Person] = {}
        self._watched: set[str] = set()
        self._by_line: dict[str, str] = {}  # folded PJSIP device → person key
        self._by_dnd_device: dict[str, str] = {}
        self._devices: dict[str, str] = {}  # folded device name → last known state
        self._lines: dict[str, LineState] = {}  # what we last reported per person
        self._dnd: dict[str, bool] = {}
        self._events = EventQueue(options.event_queue_size)
        self._probe: asyncio.Future[None] | None = None
        self._dnd_wakeup = asyncio.Event()
        self.resynced = asyncio.Event()  # set after each (re)connect's resync, for checks
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._state = ConnectionState.STOPPED
        self._error: str | None = None
        self._since = self._now()
        # Several nodes: states are written only while holding the lease, and a stopping
        # node leaves them for the next holder instead of clearing them.
        self.may_write: Callable[[], bool] = lambda: True
        self.clear_at_stop = True

    # lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting to the AMI (in the background; Asterisk need not be up yet)."""
        if self._started:
            return
        self._started = True
        self.client.start()
        if self.options.dnd_family:
            self._tasks.append(asyncio.create_task(self._dnd_loop(), name=f"{self.name} dnd"))
        self._update_status()

    async def stop(self, withdraw_timeout: float = 5.0) -> None:
        """Clear the states we set (within `withdraw_timeout` s), log off and close.

        Cleared, as the contract asks: lamps lit from Teams must not stay lit while nobody
        keeps them right. A restart sets them again at its first resync.
        """
        if not self._started:
            return
        if self.client.connected and self.clear_at_stop:
            shown = [p for p in self._people.values()
                     if p.touched and p.presence is not PbxPresence.ONLINE]
            for person in shown:
                person.presence, person.note = PbxPresence.ONLINE, ""
            try:
                await asyncio.wait_for(asyncio.gather(*(self._write(p) for p in shown)),
                                       withdraw_timeout)
            except TimeoutError:
                log.warning("%s: not every state set from Teams was cleared within %g s "
                            "before stopping", self.name, withdraw_timeout)
        self._started = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.client.stop()
        self._events.close()
        self._events = EventQueue(self.options.event_queue_size)
        self._update_status()

    # status -----------------------------------------------------------------------------

    def status(self) -> ConnectionStatus:
        """The current state and, unless connected, the problem in words with its fix."""
        return ConnectionStatus(self._state, self._error, self._since)

    def _update_status(self) -> None:
        client = self.client
        if not self._started:
            state, error = ConnectionState.STOPPED, None
        elif client.auth_failed and not client.connected:
            state, error = ConnectionState.BAD_CREDENTIALS, client.error
        elif not client.connected:
            state = ConnectionState.DEGRADED if client.error else ConnectionState.STARTING
            error = client.error
        elif self.problems:
            state, error = ConnectionState.ERROR, self.problems.text()
        else:
            state, error = ConnectionState.CONNECTED, None
        if state != self._state:
            log.info("%s: %s -> %s %s", self.name, self._state, state, error or "")
            self._state, self._since = state, self._now()
        self._error = error

    def _problem(self, area: str, text: str | None) -> None:
        if self.problems.set(area, text) and text:
            log.warning("%s: %s", self.name, text)
        self._update_status()

    # people -----------------------------------------------------------------------------

    def _person(self, user: PbxUser) -> _Person:
        person = self._people.get(user.key)
        if person is not None and person.user == user:
            return person
        names = {"key": user.key, "extension": user.value(self.options.extension_field)
                 or user.key}
        try:
            made = [template.format_map(names) if template else "" for template in (
                self.options.line_device, self.options.custom_device,
                self.options.presence_provider, self.options.dnd_devices)]
        except (KeyError, ValueError) as exc:
            raise UnaddressableUser(f"cannot name the Asterisk devices of {user.key}: {exc}"
                                    ) from None
        fresh = _Person(user, line_device=made[0], custom_device=made[1], provider=made[2],
                        dnd_key=names["extension"], dnd_device=made[3])
        if person is not None:
            fresh.presence, fresh.note, fresh.touched = person.presence, person.note, \
                person.touched
        self._people[user.key] = fresh
        return fresh

    async def list_users(self) -> list[PbxUser]:
        """The PJSIP endpoints with their caller-id names (fields extension, cn, number)."""
        if not await self.client.wait_connected(self.options.ami.timeout):
            raise AmiConnectionError(self.client.error or "not connected to the AMI yet")
        try:
            _, items = await self.client.list_action("PJSIPShowEndpoints")
        except AmiPermissionError:
            self._problem("users", "the AMI user may not list PJSIP endpoints: add system to "
                          "its write= in manager.conf, or give the connection a users_file")
            raise
        names = [m.get("ObjectName") for m in items if m.event == "EndpointList"]
        limit = asyncio.Semaphore(self.options.list_concurrency)

        async def detail(endpoint: str) -> PbxUser:
            async with limit:
                _, found = await self.client.list_action("PJSIPShowEndpoint",
                                                         Endpoint=endpoint)
            info = next((m for m in found if m.event == "EndpointDetail"), AmiMessage())
            name, number = parse_callerid(info.get("Callerid"))
            fields = {"extension": endpoint, "cn": name, "number": number}
            return PbxUser(endpoint, {k: v for k, v in fields.items() if v})

        users = await asyncio.gather(*(detail(name) for name in names if name))
        self._problem("users", None)
        return list(users)

    # Teams → Asterisk -------------------------------------------------------------------

    async def set_presence(self, user: PbxUser, presence: PbxPresence, note: str) -> None:
        """Show `presence` on the person's custom device and presence state (online clears).

        The value is kept as the truth while the AMI is down and set at the next connect.
        """
        person = self._person(user)
        person.presence, person.note, person.touched = presence, note, True
        if self.client.connected:
            await self._write(person)

    def forget_written(self) -> None:
        """Forget which states were set from Teams (another node keeps them right now)."""
        for person in self._people.values():
            person.touched = False

    async def _write(self, person: _Person, *, device: bool = True,
                     presence: bool = True) -> None:
        if not self.may_write():
            return
        batch: list[tuple[str, dict[str, str]]] = []
        if device and person.custom_device:
            batch.append(("Setvar", {"Variable": f"DEVICE_STATE({person.custom_device})",
                                     "Value": device_state_for(person.presence)}))
        if presence and person.provider:
            batch.append(("Setvar", {"Variable": f"PRESENCE_STATE({person.provider})",
                                     "Value": presence_value(person.presence, person.note)}))
        try:
            results = await self.client.actions(batch)  # both in one write
        except AmiConnectionError:
            return  # set again after the reconnect
        for result in results:
            if isinstance(result, AmiPermissionError):
                self._problem("write", "the AMI user may not set device and presence states "
                              "(Setvar): add call to its write= in manager.conf")
                return
            if isinstance(result, AmiConnectionError):
                return
            if isinstance(result, AmiError):
                self._problem("write", f"Asterisk refused a state for {person.user.key}: "
                              f"{result} (is func_devstate/func_presencestate loaded?)")
                return
        if self.problems.has("write"):
            self._problem("write", None)

    # Asterisk → Teams -------------------------------------------------------------------

    async def watch(self, users: list[PbxUser]) -> None:
        """Follow the line state (and DND) of `users` from now on; report their state now."""
        wanted: set[str] = set()
        by_line: dict[str, str] = {}
        by_dnd: dict[str, str] = {}
        for user in users:
            try:
                person = self._person(user)
            except UnaddressableUser as exc:
                self.unaddressable[user.key] = str(exc)
                log.warning("%s: %s", self.name, exc)
                continue
            wanted.add(user.key)
            if person.line_device:
                by_line[person.line_device.casefold()] = user.key
            if person.dnd_device:
                by_dnd[person.dnd_device.casefold()] = user.key
        new = wanted - self._watched
        for key in self._watched - wanted:
            self._lines.pop(key, None)
            self._dnd.pop(key, None)
        self._watched, self._by_line, self._by_dnd_device = wanted, by_line, by_dnd
        for key in new:
            self._report_line(key)
        if new:
            self._dnd_wakeup.set()

    def _report_line(self, key: str) -> None:
        person = self._people[key]
        known = self._devices.get(person.line_device.casefold())
        state = line_state_of(known) if known is not None else None
        if state is None or self._lines.get(key) == state:
            return
        self._lines[key] = state
        self._events.put(LineStateEvent(key, state, self._now()))

    def _on_event(self, message: AmiMessage) -> None:
        if message.event != "DeviceStateChange":
            return  # Debian's build also sends TestEvent, and others we do not use
        device, state = message.get("Device"), message.get("State")
        folded = device.casefold()
        if folded == PROBE_DEVICE.casefold():
            if self._probe is not None and not self._probe.done():
                self._probe.set_result(None)
            return
        self._devices[folded] = state
        key = self._by_line.get(folded)  # only phones' devices: never our Custom: ones
        if key is not None:
            self._report_line(key)
        elif folded in self._by_dnd_device:
            self._dnd_wakeup.set()

    def events(self) -> AsyncIterator[PbxEvent]:
        """Line-state and DND events of the watched people, in arrival order."""
        return self._events.events()

    # DND (AstDB) ------------------------------------------------------------------------

    async def _dnd_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dnd_wakeup.wait(), self.options.dnd_poll_interval)
            self._dnd_wakeup.clear()
            if self.client.connected and self._watched:
                with contextlib.suppress(AmiConnectionError):
                    await self.read_dnd()

    async def read_dnd(self) -> None:
        """Read AstDB's DND family and report each watched person's DND that changed."""
        try:
            _, items = await self.client.list_action("DBGetTree",
                                                     Family=self.options.dnd_family)
        except AmiPermissionError:
            self._problem("dnd", "the AMI user may not read AstDB (DBGetTree): add system "
                          "to its write= in manager.conf, or set dnd_family to '' to not "
                          "follow DND set on phones")
            return
        except AmiConnectionError:
            raise
        except AmiError as exc:
            if "not found" not in str(exc).casefold():
                self._problem("dnd", f"cannot read AstDB family {self.options.dnd_family}: {exc}")
                return
            items = []  # nobody has DND: Asterisk answers "Database entry not found"
        self._problem("dnd", None)
        prefix = f"/{self.options.dnd_family}/"
        values = {m.get("Key").removeprefix(prefix): m.get("Val") for m in items
                  if m.event == "DBGetTreeResponse"}
        for key in list(self._watched):
            person = self._people[key]
            on = values.get(person.dnd_key, "").strip().upper() not in ("", "NO", "0", "OFF")
            if self._dnd.get(key) == on:
                continue
            self._dnd[key] = on
            presence = PbxPresence.DND if on else PbxPresence.ONLINE
            self._events.put(PbxPresenceEvent(key, presence, self._now()))

    # after every (re)connect --------------------------------------------------------------

    async def _resync(self) -> None:
        """Read the phones' states, check events arrive, repair our states, read DND."""
        try:
            await self._probe_events()
            _, devices = await self.client.list_action("DeviceStateList")
            _, presences = await self.client.list_action("PresenceStateList")
        except AmiPermissionError as exc:
            self._problem("resync", f"the AMI user may not run {exc.action}: add call to its "
                          "read= and write= in manager.conf")
            self.resynced.set()
            return
        self._problem("resync", None)
        self._devices = {m.get("Device").casefold(): m.get("State") for m in devices
                         if m.event == "DeviceStateChange"}
        shown = {m.get("Presentity").casefold(): presence_value_of(m) for m in presences
                 if m.event == "PresenceStateChange"}
        for key in list(self._watched):
            self._report_line(key)
        work = []
        for person in list(self._people.values()):
            if not person.touched:
                continue
            want_device = device_state_for(person.presence)
            have_device = self._devices.get(person.custom_device.casefold(), "UNKNOWN")
            device = bool(person.custom_device) and have_device != want_device and not (
                have_device == "UNKNOWN" and want_device == "NOT_INUSE")
            want = presence_value(person.presence, person.note)
            have = shown.get(person.provider.casefold(), "not_set,,")
            presence = bool(person.provider) and have != want
            if device or presence:
                work.append(self._write(person, device=device, presence=presence))
        await asyncio.gather(*work)
        self._dnd_wakeup.set()
        self.resynced.set()

    async def _probe_events(self) -> None:
        """Toggle a probe device and wait for its event: no event means `read=` lacks call."""
        self._probe = asyncio.get_running_loop().create_future()
        found = await self.client.action("Getvar", Variable=f"DEVICE_STATE({PROBE_DEVICE})")
        value = "NOT_INUSE" if found.get("Value") == "INUSE" else "INUSE"
        await self.client.action("Setvar", Variable=f"DEVICE_STATE({PROBE_DEVICE})",
                                 Value=value)
        try:
            await asyncio.wait_for(self._probe, self.options.event_probe_timeout)
        except TimeoutError:
            self._problem("events", "no call events arrive from Asterisk, so calls cannot "
                          "show in Teams: add call to the AMI user's read= in manager.conf")
        else:
            self._problem("events", None)
        finally:
            self._probe = None


def presence_value_of(message: AmiMessage) -> str:
    """A PresenceStateChange as the PRESENCE_STATE() value we would write for it."""
    return encode_presence(message.get("Status") or "not_set", message.get("Subtype"),
                           message.get("Message"))
