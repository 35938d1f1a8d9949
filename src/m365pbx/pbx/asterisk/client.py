"""An asyncio AMI client: login, actions matched by ActionID, events, keep-alive, reconnect.

One TCP (optionally TLS) connection. Actions may be sent concurrently: each carries its own
ActionID and waits for its response; list actions (`EventList: start`) also collect their
events up to the `...Complete` one. Other events go to `on_event` in arrival order. A Ping
every `keepalive` seconds finds a dead peer; any loss closes the connection, and it is opened
again with backoff and jitter. `on_connected` runs after every login (the owner resyncs there);
login failures stop nothing: they are kept in `error` and retried with backoff, since an admin
may fix manager.conf while we wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from m365pbx.pbx.asterisk.wire import AmiMessage, AmiParser, AmiProtocolError, encode_action
from m365pbx.pbx.sip.retry import Backoff

__all__ = ["AmiAuthError", "AmiClient", "AmiConnectionError", "AmiError", "AmiOptions",
           "AmiPermissionError"]

log = logging.getLogger(__name__)

BANNER = "Asterisk Call Manager/"  # main/manager.c greets every connection with it


class AmiError(Exception):
    """An action was answered with `Response: Error` (the message is Asterisk's)."""


class AmiAuthError(AmiError):
    """Asterisk refused the login (wrong user name or secret, or an ACL)."""


class AmiPermissionError(AmiError):
    """The AMI user may not run this action (manager.conf `write=` lacks its class)."""

    def __init__(self, action: str) -> None:
        super().__init__(f"permission denied for action {action}")
        self.action = action


class AmiConnectionError(AmiError):
    """No connection to the AMI (not yet, lost, or no answer in time)."""


@dataclass(frozen=True, slots=True)
class AmiOptions:
    """Where and how to reach the AMI (times in seconds)."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    tls: ssl.SSLContext | None = None
    events: str = "on"  # Login's `Events:`: on, off, or classes such as "call,system"
    timeout: float = 10.0
    keepalive: float = 20.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=30.0))


Connected = Callable[[], Awaitable[None]]


class AmiClient:
    """A self-reconnecting AMI session; `action()` fails fast while it is down."""

    def __init__(self, options: AmiOptions) -> None:
        self.options = options
        self.on_event: Callable[[AmiMessage], None] = lambda _message: None
        self.on_connected: Connected | None = None
        self.on_state: Callable[[], None] = lambda: None
        self.connected = False
        self.error: str | None = None  # why we are not connected, in words
        self.auth_failed = False
        self.banner: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._outgoing: list[bytes] = []
        self._writer: asyncio.StreamWriter | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (in the background); returns at once."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="ami")

    async def stop(self) -> None:
        """Log off and close; no reconnect."""
        runner, self._runner = self._runner, None
        if self._writer is not None and self.connected:
            with contextlib.suppress(AmiError, OSError):
                await asyncio.wait_for(self.action("Logoff"), 1.0)
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        self._set(False, None)

    async def wait_connected(self, within: float) -> bool:
        """True once logged in (at once if already); False after `within` seconds."""
        if self.connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), within)
        return self.connected

    def _set(self, connected: bool, error: str | None) -> None:
        changed = (connected, error) != (self.connected, self.error)
        self.connected, self.error = connected, error
        if connected:
            self._ready.set()
        else:
            self._ready.clear()
        if changed:
            self.on_state()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._session()
                attempt = 0  # it was up: start the backoff again from the beginning
            except AmiAuthError as exc:
                self.auth_failed = True
                self._set(False, str(exc))
            except (OSError, TimeoutError, AmiError, AmiProtocolError) as exc:
                self._set(False, _describe(exc, self.options))
            finally:
                self._close()
            delay = self.options.backoff.delay(attempt)
            attempt += 1
            log.info("AMI %s:%d: %s; trying again in %.1f s", self.options.host,
                     self.options.port, self.error, delay)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        options = self.options
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            options.host, options.port, ssl=options.tls,
            server_hostname=options.host if options.tls else None), options.timeout)
        self._writer = writer
        parser = AmiParser()
        reading = asyncio.create_task(self._read(reader, parser))
        try:
            await self._login()
            self.banner = parser.banner
            self.auth_failed = False
            self._set(True, None)
            if self.on_connected is not None:
                await self.on_connected()
            pinging = asyncio.create_task(self._keepalive())
            try:
                done, _ = await asyncio.wait({reading, pinging},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                pinging.cancel()
        finally:
            reading.cancel()
            # wait(), not `await reading`: a stop() cancelling us right here must not be
            # swallowed with the reader's own cancellation (the loop would reconnect).
            await asyncio.wait({reading})
            if not reading.cancelled():
                reading.exception()  # retrieved: the reason reached us through the actions
        raise AmiConnectionError("Asterisk closed the AMI connection")

    async def _login(self) -> None:
        try:
            await self.action("Login", _connecting=True, Username=self.options.username,
                              Secret=self.options.secret, Events=self.options.events)
        except AmiPermissionError:
            raise AmiAuthError("Asterisk refused the AMI login") from None
        except AmiError as exc:
            if isinstance(exc, AmiConnectionError):
                raise
            raise AmiAuthError(
                f"Asterisk refused the AMI login of user {self.options.username!r} ({exc}): "
                "check username and secret against manager.conf, and that its permit= "
                "allows this host") from None

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.options.keepalive)
            await self.action("Ping")  # raises AmiConnectionError when no answer comes

    async def _read(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        reason = "Asterisk closed the AMI connection"
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for message in parser.feed(data):
                    self._dispatch(message)
                if parser.banner is not None and not parser.banner.startswith(BANNER):
                    raise AmiProtocolError(f"it greets with {parser.banner[:60]!r}")
        except (AmiProtocolError, OSError) as exc:
            reason = _describe(exc, self.options)
            raise AmiConnectionError(reason) from None
        finally:
            self._fail_pending(reason)  # nothing more will answer them

    def _dispatch(self, message: AmiMessage) -> None:
        action_id = message.action_id
        pending = self._pending.get(action_id) if action_id else None
        if pending is None:
            if message.event:
                try:
                    self.on_event(message)
                except Exception:  # one bad handler must not end the connection
                    log.exception("AMI event handler failed on %s", message.event)
            return
        if pending.response is None and message.response:
            pending.response = message
            listing = (message.get("EventList").casefold() == "start"
                       or message.get("Message").endswith("will follow"))
            if message.response.casefold() == "error" or not listing:
                self._finish(action_id, pending)
            return
        pending.events.append(message)
        if message.get("EventList").casefold() == "complete":
            self._finish(action_id, pending)

    def _finish(self, action_id: str, pending: _Pending) -> None:
        del self._pending[action_id]
        pending.timer.cancel()
        if not pending.done.done() and pending.response is not None:
            pending.done.set_result((pending.response, pending.events))

    def _close(self) -> None:
        self._outgoing = []
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._fail_pending("the AMI connection was lost")

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            item.timer.cancel()
            if not item.done.done():
                item.done.set_exception(AmiConnectionError(reason))

    def _expired(self, action_id: str, name: str) -> None:
        pending = self._pending.pop(action_id, None)
        if pending is None:
            return
        if not pending.done.done():
            pending.done.set_exception(AmiConnectionError(
                f"no answer to {name} within {self.options.timeout:g} s"))
        if self._writer is not None:
            self._writer.close()  # an AMI that does not answer is treated as gone

    # actions ----------------------------------------------------------------------------

    async def action(self, name: str, *, _connecting: bool = False,
                     **fields: str) -> AmiMessage:
        """Send an action and return its response; AmiError (or a subclass) if refused."""
        (waiting,) = self._send([(name, fields)], _connecting)
        response, _ = _checked(name, await waiting)
        return response

    async def list_action(self, name: str, **fields: str) -> tuple[AmiMessage, list[AmiMessage]]:
        """Send a list action; its response and the events up to the Complete one."""
        (waiting,) = self._send([(name, fields)], False)
        return _checked(name, await waiting)

    async def actions(self, batch: list[tuple[str, dict[str, str]]]
                      ) -> list[AmiMessage | AmiError]:
        """Send several actions in one write; each one's response, or its AmiError."""
        found: list[AmiMessage | AmiError] = []
        for (name, _), waiting in zip(batch, self._send(batch, False), strict=True):
            try:
                found.append(_checked(name, await waiting)[0])
            except AmiError as exc:
                found.append(exc)
        return found

    def _send(self, batch: list[tuple[str, dict[str, str]]],
              connecting: bool) -> list[asyncio.Future[tuple[AmiMessage, list[AmiMessage]]]]:
        writer = self._writer
        if writer is None or not (self.connected or connecting):
            raise AmiConnectionError(self.error or "not connected to the AMI")
        loop = asyncio.get_running_loop()
        data = []
        waiting = []
        for name, fields in batch:
            action_id = f"m365pbx-{next(self._ids)}"
            data.append(encode_action(name, fields, action_id))
            timer = loop.call_later(self.options.timeout, self._expired, action_id, name)
            pending = self._pending[action_id] = _Pending(loop.create_future(), timer)
            waiting.append(pending.done)
        # Actions sent in the same turn of the event loop leave in one write (one system
        # call instead of one each: the bench's many concurrent writes).
        if not self._outgoing:
            loop.call_soon(self._flush, writer)
        self._outgoing.extend(data)
        return waiting

    def _flush(self, writer: asyncio.StreamWriter) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if writer is self._writer and not writer.is_closing():
            writer.write(data)


def _checked(name: str, answer: tuple[AmiMessage, list[AmiMessage]]
             ) -> tuple[AmiMessage, list[AmiMessage]]:
    response = answer[0]
    if response.response.casefold() == "error":
        message = response.get("Message")
        if message.casefold() == "permission denied":
            raise AmiPermissionError(name)
        raise AmiError(f"{name}: {message or 'error'}")
    return answer


@dataclass(slots=True)
class _Pending:
    done: asyncio.Future[tuple[AmiMessage, list[AmiMessage]]]
    timer: asyncio.TimerHandle
    response: AmiMessage | None = None
    events: list[AmiMessage] = field(default_factory=list)


def _describe(exc: BaseException, options: AmiOptions) -> str:
    where = f"{options.host}:{options.port}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens for AMI connections at {where} (is manager.conf enabled=yes " \
               "with this port and bindaddr?)"
    if isinstance(exc, ssl.SSLError):
        return f"TLS to the AMI at {where} failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"the AMI at {where} did not answer within {options.timeout:g} s"
    if isinstance(exc, AmiProtocolError):
        return f"the peer at {where} does not speak AMI: {exc}"
    if isinstance(exc, OSError):
        return f"cannot reach the AMI at {where}: {exc.strerror or exc}"
    return str(exc)
