"""The composition root: builds every part from the settings and runs them in one TaskGroup.

Nothing here decides anything; it only connects the parts (design.md "Layout").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry

from m365pbx.clock import Clock, SystemClock
from m365pbx.config import PbxConnection as PbxConnectionSettings
from m365pbx.config import PersonSwitches, Settings
from m365pbx.core.credentials import SignInMethod
from m365pbx.core.policy import PolicyConfig, TeamsReading
from m365pbx.declarations import declarations_from_settings
from m365pbx.errors import UserInputError
from m365pbx.graph.auth import (
    Authority,
    ClientCredential,
    ServiceAccountTokenSource,
    TokenSource,
)
from m365pbx.graph.presence import get_presence
from m365pbx.graph.proxy import microsoft_http_client
from m365pbx.graph.signing_keys import SigningKeys
from m365pbx.pbx.api.connection import ApiConnection
from m365pbx.pbx.base import PbxConnection, PbxUser
from m365pbx.service.admin_edits import AdminEdits
from m365pbx.service.api_keys import StoreApiKeyChecker
from m365pbx.service.audit_events import configuration_applied
from m365pbx.service.balance import cluster_view
from m365pbx.service.certificates import CertificateKeeper
from m365pbx.service.check_page import run_check
from m365pbx.service.cluster_node import ClusterNode
from m365pbx.service.connections import build_connection, pump_events
from m365pbx.service.contacts import ContactsBook
from m365pbx.service.database_claim import DatabaseClaim
from m365pbx.service.health import iso, tenant_report
from m365pbx.service.leases import Ownership, lease_store_for
from m365pbx.service.matching_view import matching_views
from m365pbx.service.metrics import ServiceCollector
from m365pbx.service.pbx_leases import (
    LeasedSipConnection,
)
from m365pbx.service.person_explain import explain_person
from m365pbx.service.presence_view import HubPresenceView
from m365pbx.service.reconfigure import Reconfigurer
from m365pbx.service.session_store import SessionPersistence
from m365pbx.service.status import part_report, wire_registry
from m365pbx.service.status_store import StoreStatusSink, default_node
from m365pbx.service.tenant import TenantRuntime, microsoft_proxy
from m365pbx.service.tenant_identity import TenantClaims
from m365pbx.store import (
    Repositories,
    SecretBox,
    Store,
    ensure_sqlite_directory,
    parse_database_url,
    upgrade_database,
)
from m365pbx.sync.hub import PresenceHub
from m365pbx.sync.intake import NotificationIntake
from m365pbx.sync.pbx_to_teams import BatchingTeamsSink
from m365pbx.sync.people import Person
from m365pbx.sync.sinks import ConnectionsSink
from m365pbx.sync.status import PartState, PartStatus, StatusRecorder, StatusRegistry
from m365pbx.sync.supervise import supervised
from m365pbx.sync.teams_to_pbx.readings import ReadingConverter
from m365pbx.sync.teams_to_pbx.receiver import NotificationReceiver
from m365pbx.web.admin import admin_router
from m365pbx.web.admin_ui import AdminUi, admin_ui_router
from m365pbx.web.app import create_web_app
from m365pbx.web.graph_webhook import WebhookFront, webhook_router
from m365pbx.web.listen import listening_socket

log = logging.getLogger(__name__)


class _Stopped(Exception):
    """Raised inside the TaskGroup to end it after a requested stop."""


class _QuietServer(uvicorn.Server):
    """uvicorn inside our TaskGroup: the service, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class ServiceOptions:
    """What tests and the demo change beyond the settings."""

    clock: Clock = field(default_factory=SystemClock)
    # Token sources for service accounts signed in some other way (device code, tests).
    service_account_tokens: Mapping[str, TokenSource] = field(default_factory=dict)
    serve_http: bool = True
    api_keys: Any = None
    # This node's name in the store's part_status (default: the host name).
    node: str | None = None


class Service:
    """m365pbx, assembled."""

    def __init__(self, settings: Settings, box: SecretBox,
                 options: ServiceOptions | None = None) -> None:
        self.settings = settings
        self.box = box
        self.options = options or ServiceOptions()
        self.clock = self.options.clock
        self.store = Store.open(settings.database.url, box)
        # Several nodes: each tenant's jobs, and what its PBX connections send, run on the
        # node holding the tenant's lease (docs/cluster.md).
        self.lease_store = (lease_store_for(settings.database.url, box)
                            if settings.cluster.enabled else self.store)
        self._ownerships = {t.name: Ownership(self.store, f"tenant/{t.name}",
                                              lease_store=self.lease_store)
                            for t in settings.tenants} if settings.cluster.enabled else {}
        self.connections: dict[str, PbxConnection] = {}
        for config in settings.pbx_connections:
            self.connections[config.name] = build_connection(
                config, self.clock, self.store, self._ownerships.get(config.tenant))
        self._policies: dict[tuple[str, int | None], PolicyConfig] = {}
        self._connection_settings = {c.name: c for c in settings.pbx_connections}
        self.tenants: dict[str, TenantRuntime] = {}
        # PBX → Teams (issue 14): writes batched per tenant; sessions survive a restart.
        self.teams_sink = BatchingTeamsSink(self._writer_for, self._session_id_for, self.clock)
        # Several nodes: the hub acts, and saves, only for the tenants run here now.
        self.hub = PresenceHub(self.clock, ConnectionsSink(self.connections), self.teams_sink,
                               self._policy_for, workers=64,
                               teams_reader=self._read_teams_presence,
                               acts_for=lambda p: self.cluster.fence.acts_for(p.tenant))
        self.teams_sink.attach(self.hub)
        self.sessions = SessionPersistence(
            self.store, self.hub, self.clock, session_id_for=self._session_id_for,
            serves=lambda p: self.cluster.fence.may_act(p.tenant),
            writes_for=lambda tenant: self.cluster.fence.writes_for(tenant),
            refused=lambda tenant, why: self.cluster.fence.refused(tenant, "saves", why))
        self.view = HubPresenceView(self.hub)
        # Graph, Entra's metadata and keys: through the proxy sign-in uses too.
        self.http = microsoft_http_client(microsoft_proxy(settings), verify=self._verify(),
                                          timeout=15.0)
        key_file = Path(settings.secrets.key_file)
        self.certificates = CertificateKeeper(key_file.with_name("notification-certs.enc"), box,
                                              self.clock)
        self._background: set[asyncio.Task[None]] = set()
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._served = asyncio.Event()
        self.converter = ReadingConverter(settings.presence.fallback())
        self.signing_keys = SigningKeys(self.http, self.clock,
                                        login_host=str(settings.microsoft.login_url))
        self._claims = TenantClaims()
        # Teams → PBX: what the receiver accepts is routed by one intake (docs/flows.md).
        self.intake = NotificationIntake(self.clock, self.hub, self.converter,
                                         lambda: [r.parts for r in self.tenants.values()])
        self.receiver = NotificationReceiver(
            self.clock, self.intake.known, self.certificates.private_key,
            self.signing_keys.keys, self.intake.readings, self.intake.read_back,
            self.intake.lifecycle,
        )
        # One model of visible state: every part's status (design.md rule 5).
        self.status = wire_registry(StatusRegistry(self.clock), tenants=self.tenants,
                                    connections=self.connections, teams_sink=self.teams_sink,
                                    store=self.store, active=self._runs_tenant,
                                    connection_active=self._runs_connection)
        self.status.add(self._service_status)
        self._stopped_at: datetime | None = None
        cluster = settings.cluster
        # Several nodes: each tenant's jobs run on the node holding its lease (docs/cluster.md).
        node = self.options.node or (cluster.node() if cluster.enabled else default_node())
        self.node = node
        # One database, one installation: a second node without the cluster is refused.
        self.claim = DatabaseClaim(settings.database.url, node=node, cluster=cluster.enabled)
        self.status.add(self.claim.status)
        self.cluster = ClusterNode(settings, self.store, self.clock, node, status=self.status,
                                   view=self.view, connections=self.connections,
                                   receiver=self.receiver, sessions=self.sessions,
                                   serving_changed=self._people_changed,
                                   lease_store=self.lease_store)
        self.recorder = StatusRecorder(self.status, StoreStatusSink(self.store, self.clock, node),
                                       self.clock, node=node)
        # Contact search and caller lookup: one index for every tenant (service/contacts.py).
        self.contacts = ContactsBook()
        self.registry = CollectorRegistry()
        self.registry.register(ServiceCollector(self))
        self.server: uvicorn.Server | None = None
        self.edits = AdminEdits(settings, self.store, self.clock, self.hub, self.tenants,
                                self._policies.clear)
        # The configuration file applied again while running (admin UI, SIGHUP).
        self.reconfigure = Reconfigurer(self, self.clock)
        self.status.add(self.reconfigure.status)
        self.admin_ui = None if not settings.admin.enabled else AdminUi(
            self.store, self.clock, self.status.snapshot, self.view.people,
            secure_cookies=settings.public_url is not None
            and settings.public_url.scheme == "https",
            explain=functools.partial(explain_person, self.hub, self._policy_for),
            history=self.view.recent_changes,
            matching=lambda: matching_views(self.tenants),
            check=lambda: run_check(self.reconfigure.settings, self.store, self.clock),
            changes=self.view.changes, edits=self.edits, configuration=self.reconfigure,
            cluster=None if not cluster.enabled else functools.partial(
                cluster_view, self.store, cluster.lease_lifetime.total_seconds()))

    # --- wiring callbacks ---------------------------------------------------------------------
    def _verify(self) -> ssl.SSLContext | bool:
        ca_file = self.settings.microsoft.ca_file
        return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True

    def _tenant_of(self, person: Person) -> TenantRuntime:
        return self.tenants[person.tenant]

    def _writer_for(self, person: Person) -> Any:
        writer = self._tenant_of(person).parts.writer_client
        if writer is None:
            raise RuntimeError(f"tenant {person.tenant!r} has no credential with presence.write")
        return writer

    async def _read_teams_presence(self, person: Person) -> TeamsReading:
        # Before writing the status message or the preferred presence: what does Teams show
        # now? (Notifications come late; issue 18.)
        parts = self._tenant_of(person).parts
        reading = await get_presence(parts.app_client, person.teams_user_id)
        teams = self.converter.convert(reading, self.clock.now().timestamp())
        return replace(teams, direct=True)

    def _session_id_for(self, person: Person) -> str:
        return self._tenant_of(person).app_id

    def _policy_for(self, person: Person) -> PolicyConfig:
        connection = self._connection_settings[person.connection]
        switches = connection.switches_for((person.key, person.upn)) if (
            connection.per_person) else None
        key = (person.connection, None if switches is None else id(switches))
        policy = self._policies.get(key)
        if policy is None:
            policy = self._policies[key] = self._build_policy(connection, switches)
        return policy

    def _build_policy(self, connection: PbxConnectionSettings,
                      switches: PersonSwitches | None) -> PolicyConfig:
        tenant = next(t for t in self.settings.tenants if t.name == connection.tenant)
        can_write = self.tenants[tenant.name].parts.writer_client is not None

        def switch(name: str) -> bool:
            value = None if switches is None else getattr(switches, name)
            return bool(getattr(connection, name) if value is None else value)

        return PolicyConfig(
            mapping=self.edits.compiled(connection.name),
            push_line_state=switch("push_line_state_to_teams") and can_write,
            push_pbx_presence=switch("push_pbx_presence_to_teams") and can_write,
            push_pbx_note=switch("push_pbx_note_to_teams") and can_write,
            only_replace_available_busy=switch("only_replace_available_busy"),
            respect_manual_teams=not switch("pbx_wins"),
            call_end_hold_down=connection.call_end_hold_down.total_seconds(),
            pbx_hold_down=(0.0 if connection.pbx_hold_down is None
                           else connection.pbx_hold_down.total_seconds()),
        )

    def _people_changed(self) -> None:
        # Several nodes: only the people of the tenants this node runs now (docs/cluster.md).
        everyone = [p for name, runtime in self.tenants.items()
                    if self.cluster.fence.serves(name) for p in runtime.people()]
        self.hub.set_people(everyone)
        for name, runtime in self.tenants.items():
            if not self.cluster.fence.serves(name):
                continue  # its subscriptions and polling run on the node holding it
            if runtime.parts.pool is not None:
                runtime.parts.pool.assign(runtime.teams_user_ids())
            runtime.parts.poller.poll_soon()
        self.view.refresh()
        self.cluster.people_changed()

    # --- running ---------------------------------------------------------------------------------
    def web_app(self) -> Any:
        """The FastAPI app: webhooks, presence API, health, metrics."""
        path = self.settings.webhook_path
        routers = [webhook_router(self.receiver, path=path, lifecycle_path=path + "/lifecycle")]
        keys = self.options.api_keys or StoreApiKeyChecker(self.store, clock=self.clock)
        routers += self.view.routers(self.connections, keys, self.clock)
        routers.append(admin_router(self.sync_now, keys))
        routers.append(self.contacts.router(keys))
        if self.admin_ui is not None:
            routers.append(admin_ui_router(self.admin_ui))
        app = create_web_app(routers, health=self.health, registry=self.registry,
                             ready=self.readiness)
        return WebhookFront(app, self.receiver, (path, path + "/lifecycle"))

    def health(self) -> dict[str, Any]:
        """What /healthz answers: each part's state in words."""
        tenants: dict[str, dict[str, Any]] = {}
        for name, runtime in self.tenants.items():
            parts = runtime.parts
            tenants[name] = tenant_report(runtime) | {
                "teams_to_pbx": runtime.coverage.health(),
                "directory_changes": None if parts.changes is None else parts.changes.health(),
                "users_notifications": (None if parts.users_subscription is None
                                        else parts.users_subscription.health()),
                "tenant_id": runtime.identity.health(),
            }
        connections = {n: {"state": status.state.value, "error": status.last_error,
                           "since": iso(status.since)} if self._runs_connection(n)
                       else {"state": "disabled", "error": None, "since": None}
                       for n, status in ((n, c.status()) for n, c in self.connections.items())}
        writes = self._teams_writes_health()
        # ok: everything works; a red light here is no reason for a 503 (see readiness).
        statuses = self.status.snapshot()
        ok = all(t["state"] == "connected" for t in tenants.values()) and (
            writes["state"] == "writing") and all(s.state.is_ok for s in statuses)
        return {"ok": ok, "tenants": tenants, "connections": connections,
                "teams_writes": writes, "store": self.store.health(),
                "notifications": self.receiver.health(), "contacts": self.contacts.health(),
                "parts": [part_report(s) for s in statuses]}

    def _service_status(self) -> list[PartStatus]:
        if self._stopped_at is not None:
            return [PartStatus("service", "service", PartState.STOPPED, self._stopped_at,
                               "m365pbx was stopped", "Start it again: m365pbx serve")]
        state = PartState.OK if self.started.is_set() else PartState.STARTING
        return [PartStatus("service", "service", state)]

    def _teams_writes_health(self) -> dict[str, Any]:
        status = self.teams_sink.status()
        since = (None if status.since is None
                 else datetime.fromtimestamp(status.since, UTC).isoformat())
        if status.down:
            state = "held: Graph is unavailable"
        elif status.stalled_since is not None:
            waited = self.clock.now().timestamp() - status.stalled_since
            state = f"stalled: Graph has not answered a write for {waited:.0f} s"
        else:
            state = "writing"
        return {"state": state, "since": since, "waiting_people": status.waiting,
                "queued": status.queued, "last_error": status.last_error}

    async def readiness(self) -> dict[str, Any]:
        """What /readyz answers: whether m365pbx itself can serve (Microsoft is not asked).

        A tenant that cannot sign in is shown in /healthz; restarting m365pbx would not
        help it and would take the PBX side down meanwhile.
        """
        reasons = []
        if not self.started.is_set():
            reasons.append("starting")
        if self._stop.is_set():
            reasons.append("stopping")
        try:
            async with asyncio.timeout(5):
                async with self.store.engine.connect() as connection:
                    await connection.exec_driver_sql("SELECT 1")
        except Exception as exc:  # the answer is the report, whatever the failure
            reasons.append(f"the database does not answer: {type(exc).__name__}")
        # The parts an admin should look at: shown, but no reason for a restart.
        attention = [s.part for s in self.status.not_ok()]
        return {"ready": not reasons, "reasons": reasons, "attention": attention}

    async def prepare(self) -> None:
        """Migrate the database, write the file's declared objects, build the tenants."""
        url = self.settings.database.url
        ensure_sqlite_directory(parse_database_url(url))
        await self.claim.take()  # before anything is written: DatabaseInUse otherwise
        await upgrade_database(url)
        async with self.store.transaction() as tx:
            report = await tx.sync_declared(declarations_from_settings(self.settings))
            await configuration_applied(tx, report, now=self.clock.now(),
                                        source=self.settings.source_file)
        tokens = dict(self.options.service_account_tokens)
        tokens.update(await self._stored_sign_ins(tokens))
        for tenant in self.settings.tenants:
            ownership = self._ownerships.get(tenant.name)
            runtime = TenantRuntime(
                self.settings, tenant, hub=self.hub,
                connections={c.name: self.connections[c.name]
                             for c in self.settings.pbx_connections
                             if c.tenant == tenant.name and c.name in self.connections},
                store=self.store, clock=self.clock, http=self.http,
                certificates=self.certificates, on_people=self._people_changed,
                service_account_tokens=tokens, converter=self.converter, claims=self._claims,
                contacts=self.contacts, ownership=ownership,
            )
            self.tenants[tenant.name] = runtime
            if ownership is not None:
                self.cluster.add_tenant(runtime, ownership, hub=self.hub,
                                        stopping=self._stop.is_set)
            for config in self.settings.pbx_connections:
                connection = self.connections.get(config.name)
                if config.tenant == tenant.name and isinstance(connection, ApiConnection):
                    # A PBX that registers its users asks for matching at once.
                    connection.on_users(self._sync_on_users(runtime))
        self.cluster.balance()
        await self.edits.load()  # the admin UI's mapping overlays, pins and exclusions

    def _runs_connection(self, name: str) -> bool:
        """Whether this node acts on a PBX connection: leased ones only on their tenant's
        holder (the others show `disabled` here)."""
        config = self._connection_settings.get(name)
        leased = isinstance(self.connections.get(name), LeasedSipConnection)
        return config is None or not leased or self._runs_tenant(config.tenant)

    def _runs_tenant(self, name: str) -> bool:
        """Whether this node runs the tenant: always on one node, else while holding it."""
        return self.cluster.runs_tenant(name)

    @staticmethod
    def _sync_on_users(runtime: TenantRuntime) -> Callable[[list[PbxUser]], None]:
        def sync(_users: list[PbxUser]) -> None:
            runtime.parts.directory.sync_now()

        return sync

    async def _stored_sign_ins(self, known: Mapping[str, TokenSource]) -> dict[str, TokenSource]:
        """Token sources for device-code accounts, from their stored refresh tokens."""
        found: dict[str, TokenSource] = {}
        async with self.store.transaction() as tx:
            for tenant in self.settings.tenants:
                login = str(self.settings.microsoft.login_url).rstrip("/")
                verify: bool | str = (str(self.settings.microsoft.ca_file)
                                      if self.settings.microsoft.ca_file else True)
                authority = Authority(str(tenant.tenant_id), host=login, verify=verify,
                                      proxy=microsoft_proxy(self.settings))
                for account in tenant.service_accounts:
                    if account.sign_in is not SignInMethod.DEVICE_CODE or account.upn in known:
                        continue
                    row = await tx.service_accounts.find(account.upn)
                    token = None if row is None else tx.service_accounts.refresh_token(row)
                    if token is None:
                        continue
                    credential = next(c for c in tenant.credentials
                                      if c.name == account.credential)
                    found[account.upn] = ServiceAccountTokenSource(
                        authority, ClientCredential(str(credential.client_id)), account.upn,
                        refresh_token=token,
                        on_refresh_token=functools.partial(self._keep_token, account.upn),
                    )
        return found

    def _keep_token(self, upn: str, refresh_token: str) -> None:
        """Store a renewed refresh token (called from the token source)."""
        async def save(tx: Repositories) -> None:
            row = await tx.service_accounts.find(upn)
            if row is not None:
                await tx.service_accounts.set_refresh_token(row.id, refresh_token)

        async def store() -> None:
            try:
                await self.store.write(save, what=f"the refresh token of {upn}")
            except Exception:
                # Retried and in /healthz already; the token works until the next restart.
                log.exception("the renewed refresh token of %s is not saved: after a restart "
                              "it may have to sign in again", upn)

        task = asyncio.get_running_loop().create_task(store())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def sync_now(self, tenant: str | None = None) -> list[str]:
        """Start a full directory sync of one tenant or all at once; the names started."""
        if tenant is not None and tenant not in self.tenants:
            raise LookupError(tenant)
        chosen = [tenant] if tenant is not None else list(self.tenants)
        for name in chosen:
            self.tenants[name].sync_now()
        log.info("directory sync asked for: %s", ", ".join(chosen) or "no tenant")
        return chosen

    def stop(self) -> None:
        """Ask the running service to stop cleanly (Ctrl-C, tests, a restart)."""
        self._stop.set()

    async def run(self) -> None:
        """Run everything until `stop()` or cancellation; then stop cleanly."""
        sock: socket.socket | None = None
        try:
            await self.claim.take()
            if self.options.serve_http:
                sock = self._listening_socket()
            await self.prepare()
        except BaseException:
            if sock is not None:
                sock.close()
            await self.claim.release()
            raise
        try:
            if self.settings.webhook_url is not None:
                await self.receiver.warm_up()
            async with asyncio.TaskGroup() as group:
                for connection in self.connections.values():
                    await connection.start()
                for name, connection in self.connections.items():
                    group.create_task(supervised(
                        f"events of PBX connection {name}",
                        functools.partial(pump_events, name, connection, self.hub), self.clock))
                group.create_task(self.hub.run())
                group.create_task(supervised("saving presence state", self.sessions.run,
                                             self.clock))
                group.create_task(supervised("notification receiver", self.receiver.run,
                                             self.clock))
                for what, loop in self.cluster.tasks():
                    group.create_task(supervised(what, loop, self.clock))
                group.create_task(supervised("recording the parts' states", self.recorder.run,
                                             self.clock))
                group.create_task(supervised("the claim on the database", self.claim.keep,
                                             self.clock))
                group.create_task(supervised("admin edits of other processes",
                                             self.edits.follow, self.clock))
                for name, runtime in self.tenants.items():
                    # Nothing tenant-side may end the service (design.md rule 5).
                    group.create_task(supervised(f"tenant {name}",
                                                 self.cluster.tenant_work(runtime), self.clock))
                if sock is not None:
                    group.create_task(self._serve(sock))
                group.create_task(self._until_stopped())
                self.started.set()
        except* _Stopped:
            pass
        finally:
            await self.close()

    async def _until_stopped(self) -> None:
        await self._stop.wait()
        if self.server is not None:
            self.server.should_exit = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._served.wait(), timeout=5)
        # The last states are saved while every part still runs: once the task group has
        # cancelled them, a transaction cut off mid-way can keep SQLite's write lock a while.
        await self._record_last_states()
        raise _Stopped

    def _listening_socket(self) -> socket.socket:
        listen = self.settings.listen
        try:
            return listening_socket(listen.host, listen.port)
        except OSError as exc:
            raise UserInputError(
                f"{exc.strerror}: another program (another m365pbx?) listens there, or "
                "the address is not this machine's; choose another listen.host or "
                "listen.port") from None

    async def _serve(self, sock: socket.socket) -> None:
        listen = self.settings.listen
        config = uvicorn.Config(self.web_app(), host=listen.host, port=listen.port,
                                log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2,
                                # uvicorn's lines go through the root logger's format
                                # (m365pbx.logs), not a handler of its own.
                                log_config=None)
        self.server = _QuietServer(config)
        try:
            await self.server.serve(sockets=[sock])
        finally:
            sock.close()
            self._served.set()

    async def _record_last_states(self) -> None:
        self._stopped_at = self.clock.now()
        try:
            async with asyncio.timeout(5):
                await self.recorder.record()
        except Exception as exc:  # stopping goes on; the store's part says why
            log.warning("the parts' last states are not saved: %s", exc)

    async def close(self) -> None:
        """Release connections and the store (the parts' last states recorded first)."""
        if self._stopped_at is None:  # not stopped through stop(): record here
            await self._record_last_states()
        for connection in self.connections.values():
            with contextlib.suppress(Exception):
                await connection.stop()
        await self.teams_sink.aclose()
        await self.receiver.aclose()
        await self.http.aclose()
        self.view.close()
        if self.lease_store is not self.store:
            await self.lease_store.close()
        await self.store.close()
        await self.claim.release()
