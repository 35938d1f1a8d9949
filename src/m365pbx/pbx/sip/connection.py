"""SipConnection: the PbxConnection for SIP SIMPLE presence servers (Kamailio and others).

Teams → PBX: one PIDF publication per person (publication.py). PBX → Teams: a `dialog`
subscription per watched person (line state) and, if enabled, a `presence` subscription
(what the person set on the phone). Recovery (design.md rule 5):
- an OPTIONS keep-alive tells whether the server answers; when it stops answering the
  connection is DEGRADED, pending requests are abandoned and nothing is sent;
- when it answers again (or after a lost TCP connection) every publication is sent again
  with its full body and every subscription refreshed: the server may have lost its state
  in a crash (412 → fresh PUBLISH, 481 → new SUBSCRIBE), so nothing stays stale;
- transient failures (timeouts, 5xx, 408, 480) retry with backoff and jitter, honouring
  Retry-After; 401/403 show BAD_CREDENTIALS and 489/4xx show ERROR, without retries
  until the next change or recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionStatus, PbxEvent, PbxUser
from m365pbx.pbx.sip.addressing import UnaddressableUser, identity_for
from m365pbx.pbx.sip.counters import BadInputCounter
from m365pbx.pbx.sip.dialoginfo import DIALOG_INFO_TYPE
from m365pbx.pbx.sip.digest import DigestSession
from m365pbx.pbx.sip.fields import FieldError, parse_name_addr
from m365pbx.pbx.sip.health import ServerHealth
from m365pbx.pbx.sip.message import SipRequest, SipResponse, response_for
from m365pbx.pbx.sip.options import SipOptions
from m365pbx.pbx.sip.outcome import Outcome, OutcomeKind, refresh_delay
from m365pbx.pbx.sip.pidf import PIDF_TYPE, pidf_document, pidf_nothing_set
from m365pbx.pbx.sip.publication import Mode, Publication
from m365pbx.pbx.sip.retry import Scheduler, TaskFactory
from m365pbx.pbx.sip.status import StatusBoard
from m365pbx.pbx.sip.subscription import DialogKey, Subscription, termination_action
from m365pbx.pbx.sip.useragent import UaConfig, UserAgent
from m365pbx.pbx.sip.watching import EventQueue, LineWatch, PresenceWatch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Person:
    user: PbxUser
    address: str
    sender: str
    auth: DigestSession | None
    presence: PbxPresence = PbxPresence.ONLINE
    note: str = ""
    publication: Publication | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    watches: dict[str, LineWatch | PresenceWatch] = field(default_factory=dict)
    held_until: datetime | None = None  # when the server drops our publication unless refreshed


@dataclass(frozen=True, slots=True)
class HeldPublication:
    """A publication the server holds for us: whose, its ETag, and until when."""

    user: PbxUser
    etag: str
    expires_at: datetime


class SipConnection:
    """A PbxConnection that publishes PIDF and subscribes to dialog (and presence) state."""

    def __init__(
        self,
        name: str,
        options: SipOptions,
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.bad_input = BadInputCounter()
        # Peers refused (foreign address, too many connections, too slow): in status().
        self.refused = BadInputCounter(what=f"{name}: refused SIP peer", level=logging.WARNING)
        self.unknown_dialog_notifies = 0
        self.unaddressable: dict[str, str] = {}
        # Called with a PBX user's key (must not block) whenever its publication changes.
        self.on_publications_changed: Callable[[str], None] | None = None
        # Asked before each PUBLISH: several nodes publish only while holding the lease.
        self.may_publish: Callable[[], bool] = lambda: True
        self._now = now or (lambda: datetime.now(UTC))
        self._ua = UserAgent(
            UaConfig(
                server=options.server,
                transport=options.transport,
                local_host=options.local_host,
                local_port=options.local_port,
                timers=options.timers,
                user_agent=options.user_agent,
                tcp_limits=options.tcp_limits,
            ),
            self.bad_input,
            max_in_flight=options.max_in_flight,
            refusals=self.refused,
        )
        self._ua.notify_handler = self._on_notify
        self._ua.on_connection_lost = self._connection_lost
        self._people: dict[str, _Person] = {}
        self._restored: set[str] = set()
        self._watched: set[str] = set()
        self._dialogs: dict[DialogKey, Subscription] = {}
        self._auth: dict[tuple[str, str], DigestSession] = {}
        self._events = EventQueue(options.event_queue_size)
        self._scheduler = Scheduler()
        self._attempts: dict[Hashable, int] = {}
        self._board = StatusBoard(name, self._now)
        self._terminated_at: dict[Hashable, float] = {}
        self._health = ServerHealth(
            self._ua,
            options.addressing.domain,
            interval=options.keepalive_interval,
            timeout=options.keepalive_timeout,
            on_down=self._server_down,
            on_up=self._server_up,
            on_steady=self._check_server_memory,
        )
        self._canary_turn = 0
        self._stopped = False
        self._started = False
        self._events_closed = False

    # lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport and start the keep-alive; the server need not be up yet."""
        if self._started:
            return
        if self._stopped:
            # Started again after stop(): fresh timers and, if it ended, a fresh event stream.
            self._scheduler = Scheduler()
            if self._events_closed:
                self._events = EventQueue(self.options.event_queue_size)
                self._events_closed = False
            self._health.up = None
        self._stopped = False
        await self._ua.start()
        self._started = True
        self._update_status()
        self._health.start()
        for key in self._restored:
            self._keep_later(self._people[key])

    async def stop(self) -> None:
        """Remove our publications, end our subscriptions (within stop_timeout), close."""
        if not self._started:
            return
        await self._health.stop()
        await self._scheduler.close()
        if await self._server_answers_now():
            await self._withdraw_all()
        self._stopped = True
        self._started = False
        await self._ua.close()
        self._update_status()
        self._events.close()
        self._events_closed = True

    async def leave(self, *, clean: bool) -> None:
        """Stop without withdrawing the publications: another node takes them over.

        With `clean` (this node stops) the subscriptions are ended first; without (the
        lease was lost) nothing more is sent. Everything held is forgotten, so a later
        start() begins from what it is given again; the event stream stays open.
        """
        if not self._started:
            return
        await self._health.stop()
        await self._scheduler.close()
        if clean and await self._server_answers_now():
            work = [sub.unsubscribe() for p in self._people.values()
                    for sub in p.subscriptions.values()]
            if work:
                try:
                    await asyncio.wait_for(asyncio.gather(*work), self.options.stop_timeout)
                except TimeoutError:
                    log.info("%s: not every subscription was ended before stopping; they "
                             "expire by themselves", self.name)
        self._stopped = True
        self._started = False
        await self._ua.close()
        self._people.clear()
        self._restored.clear()
        self._watched.clear()
        self._dialogs.clear()
        self._attempts.clear()
        self._board = StatusBoard(self.name, self._now)
        self._update_status()

    async def _server_answers_now(self) -> bool:
        """Whether stopping should still talk to the server.

        One unanswered keepalive marks the server down, and on a busy machine that can
        be a slow answer, not an outage: leaving the publications to expire would show
        the people with a state we no longer hold for up to publish_expires. So a server
        marked down is asked once more (bounded by keepalive_timeout) before giving up.
        """
        if self._health.up is not False:
            return True
        answered = await self._health.probe()
        if not answered:
            log.info("%s: the presence server does not answer; stopping without withdrawing "
                     "(the publications end when they expire)", self.name)
        return answered

    async def _withdraw_all(self) -> None:
        work = []
        for person in self._people.values():
            if person.publication is not None and person.publication.active:
                person.publication.desired = None
                work.append(person.publication.sync())
            work.extend(sub.unsubscribe() for sub in person.subscriptions.values())
        if not work:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*work), self.options.stop_timeout)
        except TimeoutError:
            held = [p for p in self._people.values() if p.publication and p.publication.active]
            log.warning(
                "%s: not every publication was withdrawn before stopping: %d still held after "
                "%g s (the server answers removals no faster); they end when they expire "
                "(publish_expires), or the next start takes them over",
                self.name,
                len(held),
                self.options.stop_timeout,
            )

    # status -----------------------------------------------------------------------------

    def status(self) -> ConnectionStatus:
        """The current state, unless connected the last error in words, and peers refused."""
        status = self._board.status()
        return replace(status, refused=MappingProxyType(dict(self.refused.counts)))

    def _update_status(self) -> None:
        self._board.update(
            running=self._started and not self._stopped,
            server_up=self._health.up,
            server_error=self._health.error,
        )

    # Teams → PBX ------------------------------------------------------------------------

    def _person(self, user: PbxUser) -> _Person:
        """The person for `user`, created or re-targeted; UnaddressableUser if no address."""
        person = self._people.get(user.key)
        if person is not None and person.user == user:
            return person
        address = self.options.addressing.address(user)
        identity = identity_for(self.options.accounts, self.options.addressing, user, address)
        auth = None
        if identity.credentials is not None:
            login = (identity.credentials.username, identity.credentials.password)
            auth = self._auth.setdefault(login, DigestSession(identity.credentials))
        if person is not None and (person.address, person.sender, person.auth) == (
            address,
            identity.sender,
            auth,
        ):
            person.user = user
            return person
        fresh = _Person(user, address, identity.sender, auth)
        self._people[user.key] = fresh
        self.unaddressable.pop(user.key, None)
        if person is not None:
            self._retarget(person, fresh)
        return fresh

    def _retarget(self, old: _Person, fresh: _Person) -> None:
        """A person's address or account changed: withdraw the old, show the truth anew."""
        if old.publication is not None and old.publication.active and self.may_publish():
            old.publication.desired = None
            self._scheduler.spawn(_quietly(old.publication.sync()))
            self._publications_changed(old.user.key)
        for subscription in old.subscriptions.values():
            self._scheduler.spawn(_quietly(subscription.unsubscribe()))
        fresh.presence, fresh.note = old.presence, old.note
        if old.presence is not PbxPresence.ONLINE:
            self._desire(fresh)
            self._scheduler.spawn(self._publish(fresh, Mode.SYNC))
        if old.subscriptions:
            for event in old.subscriptions:
                self._add_subscription(fresh, event)
                self._scheduler.spawn(self._subscribe(fresh, event))

    def _publication(self, person: _Person) -> Publication:
        """The person's publication, created when first needed."""
        if person.publication is None:
            person.publication = Publication(
                self._ua,
                person.address,
                person.sender,
                auth=person.auth,
                expires=self.options.publish_expires,
                limit=self.options.request_timeout,
                cover=pidf_nothing_set(person.address),
            )
        return person.publication

    def _desire(self, person: _Person) -> None:
        """Put the person's presence into their publication (none needed for online)."""
        if person.publication is None and person.presence is PbxPresence.ONLINE:
            return
        self._publication(person).desired = (
            None
            if person.presence is PbxPresence.ONLINE
            else pidf_document(person.address, person.presence, person.note)
        )

    def publication_etags(self) -> dict[str, str]:
        """The ETag of every live publication by PBX user key, for the store to keep."""
        return {
            key: person.publication.etag
            for key, person in self._people.items()
            if person.publication is not None and person.publication.etag is not None
        }

    def publications(self) -> dict[str, HeldPublication]:
        """Every unexpired publication by PBX user key: user, ETag and expiry, for the store."""
        now = self._now()
        held = ((key, _held(person, now)) for key, person in self._people.items())
        return {key: item for key, item in held if item is not None}

    def publication_of(self, key: str) -> HeldPublication | None:
        """The unexpired publication of one PBX user (user, ETag, expiry), if it has one."""
        person = self._people.get(key)
        return None if person is None else _held(person, self._now())

    def restore_publication(
        self, user: PbxUser, etag: str, expires_at: datetime | None = None
    ) -> None:
        """Take over a publication made before a restart (its ETag from the store).

        The next set_presence for `user` then modifies or removes that publication
        instead of creating a second one next to it (RFC 3903 §4.4; the server would
        show both until the old one expires). A stale ETag just gets 412 → fresh PUBLISH,
        and so does one the server refuses in any other way. `expires_at` is when the
        server drops it (default: `publish_expires` from now).
        """
        person = self._person(user)
        publication = self._publication(person)
        publication.etag = etag
        publication.adopted = True
        publication.published = None
        person.held_until = expires_at or self._now() + timedelta(
            seconds=self.options.publish_expires
        )
        self._restored.add(user.key)
        self._desire(person)
        if self._started:
            self._keep_later(person)

    def _keep_later(self, person: _Person) -> None:
        """Refresh a taken-over publication before it expires, while nobody has claimed it
        (its new holder may not know the person's presence yet: no lamp goes dark meanwhile)."""
        if person.held_until is None:
            return
        left = (person.held_until - self._now()).total_seconds()

        async def keep() -> None:
            await self._keep(person)

        delay = refresh_delay(int(left), self.options.refresh_margin)
        self._scheduler.later(("publish", person.user.key), delay, keep)

    async def _keep(self, person: _Person) -> None:
        publication = person.publication
        if person.user.key not in self._restored:
            # Claimed or settled meanwhile: this timer may stand for their own refresh.
            await self._publish(person, Mode.REFRESH)
            return
        if publication is None or self._health.up is False or not self.may_publish():
            return
        before = publication.etag
        outcome = await publication.keep()
        if publication.etag != before:
            person.held_until = (None if publication.etag is None
                                 else self._now() + timedelta(seconds=publication.granted))
            self._publications_changed(person.user.key)
        if publication.etag is None:
            self._restored.discard(person.user.key)

        async def again() -> None:
            await self._keep(person)

        self._after(("publish", person.user.key), outcome, again, again, publication)

    async def settle_restored(self) -> None:
        """Withdraw the taken-over publications that no set_presence has claimed since.

        For a person who is online after the restart nobody calls set_presence, so the
        old publication (an old dnd, say) would show until it expires.
        """
        keys, self._restored = self._restored, set()
        people = [self._people[key] for key in keys if key in self._people]
        await asyncio.gather(*(self._publish(person, Mode.SYNC) for person in people))

    async def set_presence(self, user: PbxUser, presence: PbxPresence, note: str) -> None:
        """Publish `presence` for `user` (online removes it); UnaddressableUser if no address.

        The value is kept as the truth even if the server is down: it is sent again as
        soon as the server answers, and retried with backoff after transient failures.
        """
        person = self._person(user)
        person.presence, person.note = presence, note
        self._restored.discard(user.key)
        self._desire(person)
        await self._publish(person, Mode.SYNC)

    async def _publish(self, person: _Person, mode: Mode) -> None:
        publication = person.publication
        if publication is None or self._health.up is False or not self.may_publish():
            return
        key = ("publish", person.user.key)
        before = (publication.etag, publication.grants)
        outcome = await publication.sync(mode)
        if (publication.etag, publication.grants) != before:
            person.held_until = (
                None
                if publication.etag is None
                else self._now() + timedelta(seconds=publication.granted)
            )
            self._publications_changed(person.user.key)

        async def retry() -> None:
            await self._publish(person, Mode.SYNC)

        async def refresh() -> None:
            await self._publish(person, Mode.REFRESH)

        self._after(key, outcome, retry, refresh, publication)

    def _publications_changed(self, key: str) -> None:
        if self.on_publications_changed is not None:
            self.on_publications_changed(key)

    def _after(
        self,
        key: Hashable,
        outcome: Outcome,
        redo: TaskFactory,
        refresh: TaskFactory | None,
        refreshed: object | None = None,
    ) -> None:
        """Record an outcome; schedule the refresh or the retry it calls for.

        `refreshed` is what `refresh` refreshes (a publication or subscription): a refresh
        of the same one already due a little earlier is kept rather than moved.
        """
        self._board.record(key, outcome)
        if outcome.ok:
            self._attempts.pop(key, None)
            if outcome.refresh_in and refresh is not None:
                delay = refresh_delay(int(outcome.refresh_in), self.options.refresh_margin)
                self._scheduler.later(key, delay, refresh, token=refreshed, slack=delay / 10)
            else:
                self._scheduler.cancel(key)
        else:
            self._scheduler.cancel(key)
            if outcome.kind is OutcomeKind.RETRY and self._health.up is not False:
                attempt = self._attempts.get(key, 0)
                self._attempts[key] = attempt + 1
                delay = self.options.backoff.delay(attempt, outcome.retry_after)
                self._scheduler.later(key, delay, redo)
            log.info("%s: %s", self.name, outcome.detail)
        self._update_status()

    # PBX → Teams ------------------------------------------------------------------------

    async def watch(self, users: list[PbxUser]) -> None:
        """Subscribe to the line state (and presence) of `users`; end the others'."""
        wanted: dict[str, PbxUser] = {}
        for user in users:
            try:
                self._person(user)
            except UnaddressableUser as exc:
                self.unaddressable[user.key] = str(exc)
                log.warning("%s: %s", self.name, exc)
                continue
            wanted[user.key] = user
        for key in self._watched - set(wanted):
            person = self._people[key]
            for event, sub in list(person.subscriptions.items()):
                self._scheduler.cancel(("subscribe", key, event))
                self._board.forget(("subscribe", key, event))
                self._scheduler.spawn(_quietly(sub.unsubscribe()))
            person.subscriptions.clear()
            person.watches.clear()
        self._watched = set(wanted)
        work = []
        for key in wanted:
            person = self._people[key]
            for event in self._events_to_watch():
                if event not in person.subscriptions:
                    self._add_subscription(person, event)
                    work.append(self._subscribe(person, event))
        await asyncio.gather(*work)
        self._update_status()

    def _events_to_watch(self) -> list[str]:
        events = ["dialog"] if self.options.watch_line_state else []
        return events + (["presence"] if self.options.watch_presence else [])

    def _add_subscription(self, person: _Person, event: str) -> None:
        kind = LineWatch if event == "dialog" else PresenceWatch

        def terminated(_: Subscription, reason: str, retry_after: float | None) -> None:
            self._terminated(person, event, reason, retry_after)

        def resync(_: Subscription) -> None:
            self._scheduler.spawn(self._subscribe(person, event))

        key, emit = person.user.key, self._events.put
        watch = kind(key, emit, self.bad_input, self._now, terminated, resync)
        subscription = Subscription(
            self._ua,
            person.address,
            person.sender,
            event,
            DIALOG_INFO_TYPE if event == "dialog" else PIDF_TYPE,
            watch,
            self._dialogs,
            auth=person.auth,
            expires=self.options.subscribe_expires,
            limit=self.options.request_timeout,
        )
        if isinstance(watch, LineWatch):
            subscription.on_new_dialog = watch.tracker.reset
        person.subscriptions[event] = subscription
        person.watches[event] = watch

    async def _subscribe(self, person: _Person, event: str) -> None:
        subscription = person.subscriptions.get(event)
        if subscription is None or self._health.up is False:
            return
        key = ("subscribe", person.user.key, event)
        outcome = await subscription.subscribe()
        if person.subscriptions.get(event) is not subscription:
            return  # no longer watched

        async def redo() -> None:
            await self._subscribe(person, event)

        self._after(key, outcome, redo, redo, subscription)

    def _terminated(
        self, person: _Person, event: str, reason: str, retry_after: float | None
    ) -> None:
        subscription = person.subscriptions.get(event)
        if subscription is None:
            return
        key = ("subscribe", person.user.key, event)
        subscription.restart()

        async def redo() -> None:
            await self._subscribe(person, event)

        detail = f"{event} subscription of {person.address} terminated ({reason or 'no reason'})"
        if termination_action(reason) is OutcomeKind.FAILED:
            self._after(key, Outcome(OutcomeKind.FAILED, detail), redo, None)
            return
        now = asyncio.get_running_loop().time()
        recent = now - self._terminated_at.get(key, float("-inf")) < 30.0
        self._terminated_at[key] = now
        if reason in ("deactivated", "timeout") and retry_after is None and not recent:
            # RFC 6665 §4.1.3: re-subscribe at once; a second time within 30 s backs off.
            self._scheduler.later(key, 0, redo)
            return
        self._after(key, Outcome(OutcomeKind.RETRY, detail, retry_after), redo, None)

    def _on_notify(self, request: SipRequest) -> SipResponse:
        try:
            tag = parse_name_addr(request.headers.get("to") or "").tag or ""
        except FieldError as exc:
            self.bad_input.record("bad-header", f"NOTIFY To: {exc}")
            return response_for(request, 400)
        subscription = self._dialogs.get((request.call_id, tag))
        if subscription is None:
            self.unknown_dialog_notifies += 1
            return response_for(request, 481)
        return subscription.handle_notify(request)

    def events(self) -> AsyncIterator[PbxEvent]:
        """Line-state and phone-presence events of the watched people, in arrival order."""
        return self._events.events()

    def _connection_lost(self) -> None:
        if self._started and not self._stopped:
            self._health.suspect_restart()

    async def list_users(self) -> list[PbxUser]:
        """A SIP presence server cannot list its users: always empty."""
        return []

    # recovery ---------------------------------------------------------------------------

    def _server_down(self) -> None:
        # Pending requests would only time out (Timer F); the truth is kept and re-sent.
        self._ua.layer.abort_all("the presence server does not answer")
        self._update_status()

    def _server_up(self, recovered: bool) -> None:
        if recovered or self._board.problems:
            self._scheduler.spawn(self.reassert())
        self._update_status()

    async def _check_server_memory(self) -> None:
        """Refresh one publication (or, with none, one subscription) per keep-alive, in
        turn: a server that restarted since the last probe answers 412 (or 481), and then
        everything is sent again instead of waiting for each refresh."""
        people = [p for p in self._people.values() if p.user.key not in self._restored]
        published = [p for p in people if p.publication is not None and p.publication.active
                     and p.publication.published is not None]
        if published:
            person = published[self._canary_turn % len(published)]
            publication = person.publication
            assert publication is not None
            before = publication.lost
            await self._publish(person, Mode.REFRESH)
            forgotten = publication.lost > before
        else:
            subscribed = [(p, event, sub) for p in people
                          for event, sub in p.subscriptions.items() if sub.confirmed]
            if not subscribed:
                return
            person, event, subscription = subscribed[self._canary_turn % len(subscribed)]
            before = subscription.lost
            await self._subscribe(person, event)
            forgotten = subscription.lost > before
        self._canary_turn += 1
        if forgotten:
            log.warning("%s: the presence server no longer held what it had granted for %s "
                        "(restarted between two keep-alives?); sending everything again",
                        self.name, person.address)
            self._scheduler.spawn(self.reassert())

    async def reassert(self) -> None:
        """Send every publication again and refresh every subscription (after recovery)."""
        work = []
        for person in list(self._people.values()):
            # A taken-over publication nobody claimed yet: its body is not known here.
            if person.publication is not None and person.user.key not in self._restored:
                work.append(self._publish(person, Mode.REASSERT))
            work.extend(self._subscribe(person, event) for event in list(person.subscriptions))
        await asyncio.gather(*work)


async def _quietly(awaitable: Awaitable[object]) -> None:
    """Await something whose result nobody needs (withdrawals in the background)."""
    await awaitable


def _held(person: _Person, now: datetime) -> HeldPublication | None:
    """What the store keeps of a person's publication: None when there is none, or expired."""
    publication = person.publication
    if (publication is None or publication.etag is None or person.held_until is None
            or person.held_until <= now):
        return None
    return HeldPublication(person.user, publication.etag, person.held_until)
