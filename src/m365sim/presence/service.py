"""The presence service: every user's presence inputs, their aggregate, its notifications.

Writes (a Teams client, an app through Graph, the calendar) change one user's inputs and
re-aggregate at once; time-driven changes (the Available fade, expiries) are applied by
`run()` at their deadlines on `sim.clock`, and by every read that comes first, so a read
between two ticks is already right. A ResourceChange goes out only when what a reader
sees (availability, activity, status message, out-of-office flag) changed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from m365sim.events import ResourceChange
from m365sim.model import TEAMS_SERVICE
from m365sim.presence.model import (
    AppSession,
    Preferred,
    StatusMessage,
    UserPresence,
    View,
    evaluate,
)
from m365sim.presence.states import (
    AVAILABLE,
    CALENDAR_ACTIVITIES,
    CLIENT_STATES,
    State,
    client_state,
    describe,
    preferred_state,
)
from m365sim.presence.timefmt import US_PER_DAY, US_PER_SECOND, to_us
from m365sim.presence.views import (
    PRESENCE_TYPE,
    notification_data,
    own_presence,
    public_presence,
    sequence_stamp,
    unknown_presence,
)
from m365sim.scenario import ScenarioError

if TYPE_CHECKING:
    from m365sim.model import Tenant, User
    from m365sim.simulator import Simulator

DEFAULT_CLIENT = "desktop"

# setUserPreferredPresence without expirationDuration: 1 day for Busy and DoNotDisturb,
# 7 days for the others (graph.md 3.5).
_PREFERRED_DEFAULT_US = {"Busy": US_PER_DAY, "DoNotDisturb": US_PER_DAY}
_PREFERRED_OTHER_DEFAULT_US = 7 * US_PER_DAY


def has_teams(user: User) -> bool:
    """Whether the user has an enabled Teams service plan (so Teams keeps a presence)."""
    return any(plan.get("service") == TEAMS_SERVICE and plan.get("capabilityStatus") == "Enabled"
               for plan in user.assigned_plans)


def preferred_default_us(state: State) -> int:
    """The documented default lifetime of a preferred presence without expirationDuration."""
    return _PREFERRED_DEFAULT_US.get(state[0], _PREFERRED_OTHER_DEFAULT_US)


class PresenceService:
    """The presence part of the simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._users: dict[str, dict[str, UserPresence]] = {}
        self._deadlines: list[tuple[int, int, str, str]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        # Stamps start from the creation time so they also grow across simulator restarts.
        self._stamps = itertools.count(to_us(sim.clock.now()))

    # -- time -----------------------------------------------------------------------------

    def now_us(self) -> int:
        """The simulator's current time in microseconds since the epoch."""
        return to_us(self.sim.clock.now())

    async def run(self) -> None:
        """Apply fades and expiries at their deadlines on the simulator's clock until cancelled."""
        while True:
            now = self.now_us()
            while self._deadlines and self._deadlines[0][0] <= now:
                when, _, tenant_id, user_id = heapq.heappop(self._deadlines)
                presence = self._users.get(tenant_id, {}).get(user_id)
                if presence is None:
                    continue
                if presence.scheduled == when:
                    presence.scheduled = None
                self._settle(tenant_id, presence, now)
                self._schedule(tenant_id, presence, now)
            self._wake.clear()
            delay = (self._deadlines[0][0] - now) / US_PER_SECOND if self._deadlines else None
            await self._wait(delay)

    async def _wait(self, delay: float | None) -> None:
        """Sleep until `delay` seconds pass on the clock or an earlier deadline arrives."""
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
        if delay is not None:
            waits.add(asyncio.ensure_future(self.sim.clock.sleep(delay)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _schedule(self, tenant_id: str, presence: UserPresence, now: int) -> None:
        """Queue the user's next deadline unless an earlier pending one already covers it."""
        when = presence.next_change
        if when is None:
            return
        pending = presence.scheduled
        if pending is not None and now < pending <= when:
            return
        presence.scheduled = when
        heapq.heappush(self._deadlines, (when, next(self._order), tenant_id, presence.user_id))
        if self._deadlines[0][0] == when:
            self._wake.set()

    # -- aggregation and notifications ----------------------------------------------------

    def _settle(self, tenant_id: str, presence: UserPresence, now: int, *,
                changed: bool = False) -> View:
        """Bring the aggregate up to `now`; publish when what readers see has changed."""
        if (not changed and presence.view is not None
                and (presence.next_change is None or now < presence.next_change)):
            return presence.view
        view, presence.next_change = evaluate(presence, now)
        if view != presence.view:
            first = presence.view is None
            presence.view = view
            presence.public = None
            presence.sequence = sequence_stamp(next(self._stamps))
            if not first:
                self._publish(tenant_id, presence, view)
        self._schedule(tenant_id, presence, now)
        return view

    def _publish(self, tenant_id: str, presence: UserPresence, view: View) -> None:
        user_id = presence.user_id
        self.sim.bus.publish(ResourceChange(
            tenant_id=tenant_id,
            resource=f"communications/presences/{user_id}",
            change_type="updated",
            resource_id=user_id,
            odata_type=PRESENCE_TYPE,
            odata_id=f"users/{user_id}/presence",
            resource_data=notification_data(presence, view),
        ))

    def _presence(self, tenant_id: str, user_id: str) -> UserPresence:
        """The user's presence state, created signed out on first use."""
        users = self._users.setdefault(tenant_id, {})
        presence = users.get(user_id)
        if presence is None:
            presence = users[user_id] = UserPresence(user_id)
        return presence

    def _change(self, tenant_id: str, user_id: str) -> tuple[UserPresence, int]:
        """Settle the user at `now` before a write, so earlier timed changes are published."""
        presence = self._presence(tenant_id, user_id)
        now = self.now_us()
        self._settle(tenant_id, presence, now)
        return presence, now

    # -- scenario -------------------------------------------------------------------------

    def load_user(self, tenant: Tenant, user: User, presence: Any) -> None:
        """Set a scenario user's initial Teams client state.

        `"signed-in"` (default): one Teams client, Available/Available; `"signed-out"` or
        None: no client; a mapping `{availability, activity}`: one client in that state,
        optionally with `preferred: {availability, activity, expiration}` and
        `status_message`.
        """
        if presence == "signed-in":
            clients = {DEFAULT_CLIENT: AVAILABLE}
        elif presence is None or presence == "signed-out":
            clients = {}
        elif isinstance(presence, Mapping):
            self._load_mapping(tenant, user, presence)
            return
        else:
            raise ScenarioError(f"user {user.user_principal_name}: presence must be 'signed-in', "
                                f"'signed-out' or a mapping, not {presence!r}")
        users = self._users.get(tenant.id)
        if users is None:
            users = self._users[tenant.id] = {}
        users[user.id] = UserPresence(user.id, clients)

    def _load_mapping(self, tenant: Tenant, user: User, data: Mapping[str, Any]) -> None:
        where = f"user {user.user_principal_name}: presence"
        state = client_state(str(data.get("availability", "Available")),
                             str(data.get("activity", "Available")))
        if state is None:
            raise ScenarioError(f"{where}: a Teams client shows one of {describe(CLIENT_STATES)}")
        presence = UserPresence(user.id, {DEFAULT_CLIENT: state})
        self._users.setdefault(tenant.id, {})[user.id] = presence
        now = self.now_us()
        preferred = data.get("preferred")
        if preferred is not None:
            chosen = preferred_state(str(preferred.get("availability")),
                                     str(preferred.get("activity")))
            if chosen is None:
                raise ScenarioError(f"{where}.preferred: not a preferred presence")
            presence.preferred = Preferred(chosen, now, now + preferred_default_us(chosen), "teams")
        if data.get("status_message"):
            presence.status = StatusMessage(str(data["status_message"]), now, None, "teams")

    # -- reads ----------------------------------------------------------------------------

    def read(self, tenant: Tenant, user_id: str, *, own: bool = False) -> dict[str, Any] | None:
        """The presence JSON of a user at `now`; None if the tenant has no such user."""
        user = tenant.users.get(user_id)
        if user is None or user.deleted:
            return None
        return self._read_user(tenant.id, user, self.now_us(), own=own)

    def read_many(self, tenant: Tenant, user_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Presence JSON for each id, PresenceUnknown for ids without Teams presence."""
        now = self.now_us()
        users = tenant.users
        answers = []
        for user_id in user_ids:
            user = users.get(user_id)
            if user is None or user.deleted:
                answers.append(unknown_presence(user_id))
            else:
                answers.append(self._read_user(tenant.id, user, now, own=False))
        return answers

    def _read_user(self, tenant_id: str, user: User, now: int, *, own: bool) -> dict[str, Any]:
        if not has_teams(user):
            return unknown_presence(user.id)
        presence = self._presence(tenant_id, user.id)
        view = self._settle(tenant_id, presence, now)
        if own:
            return own_presence(presence, view)
        # Shared between answers: callers serialise it and must not change it.
        if presence.public is None:
            presence.public = public_presence(presence, view)
        return presence.public

    def state_of(self, tenant_id: str, user_id: str) -> UserPresence:
        """The user's presence inputs, settled at `now` (for the control API and tests)."""
        presence, _ = self._change(tenant_id, user_id)
        return presence

    # -- an application through Graph -----------------------------------------------------

    def set_presence(self, tenant_id: str, user_id: str, session_id: str, state: State,
                     lifetime_us: int) -> None:
        """Create or refresh the app's presence session (setPresence)."""
        presence, now = self._change(tenant_id, user_id)
        session = presence.apps.get(session_id)
        if session is None:
            presence.apps[session_id] = AppSession(session_id, state, now, now + lifetime_us, now)
        else:
            session.state = state
            session.refreshed_at = now
            session.expires_at = now + lifetime_us
        self._settle(tenant_id, presence, now, changed=True)

    def clear_presence(self, tenant_id: str, user_id: str, session_id: str) -> bool:
        """End the app's presence session (clearPresence); False if it had none."""
        presence, now = self._change(tenant_id, user_id)
        if presence.apps.pop(session_id, None) is None:
            return False
        self._settle(tenant_id, presence, now, changed=True)
        return True

    def set_preferred(self, tenant_id: str, user_id: str, state: State,
                      lifetime_us: int | None, set_by: str) -> None:
        """Set the user-preferred presence, with the documented default lifetime."""
        presence, now = self._change(tenant_id, user_id)
        lifetime = preferred_default_us(state) if lifetime_us is None else lifetime_us
        presence.preferred = Preferred(state, now, now + lifetime, set_by)
        self._settle(tenant_id, presence, now, changed=True)

    def clear_preferred(self, tenant_id: str, user_id: str) -> None:
        """Remove the user-preferred presence (clearUserPreferredPresence)."""
        presence, now = self._change(tenant_id, user_id)
        presence.preferred = None
        self._settle(tenant_id, presence, now, changed=True)

    def set_status_message(self, tenant_id: str, user_id: str, content: str | None,
                           expires_at: int | None, set_by: str) -> None:
        """Set (or, with no content, remove) the status message."""
        presence, now = self._change(tenant_id, user_id)
        presence.status = (StatusMessage(content, now, expires_at, set_by) if content
                           else None)
        self._settle(tenant_id, presence, now, changed=True)

    # -- the person in their Teams client -------------------------------------------------

    def set_client_state(self, tenant_id: str, user_id: str, state: State,
                         client: str = DEFAULT_CLIENT) -> None:
        """A Teams client (signed in if it was not) reports a state, e.g. Busy/InACall."""
        presence, now = self._change(tenant_id, user_id)
        presence.clients[client] = state
        self._settle(tenant_id, presence, now, changed=True)

    def sign_in(self, tenant_id: str, user_id: str, client: str = DEFAULT_CLIENT) -> None:
        """The person signs in to a Teams client (Available unless it already runs)."""
        presence, now = self._change(tenant_id, user_id)
        presence.clients.setdefault(client, AVAILABLE)
        self._settle(tenant_id, presence, now, changed=True)

    def sign_out(self, tenant_id: str, user_id: str, client: str | None = None) -> None:
        """The person signs out of one Teams client, or of all of them."""
        presence, now = self._change(tenant_id, user_id)
        if client is None:
            presence.clients.clear()
        else:
            presence.clients.pop(client, None)
        self._settle(tenant_id, presence, now, changed=True)

    # -- the calendar ---------------------------------------------------------------------

    def set_calendar_activity(self, tenant_id: str, user_id: str, activity: str | None) -> None:
        """The outlook part reports a meeting or out-of-office period starting (or ending)."""
        if activity is not None and activity not in CALENDAR_ACTIVITIES:
            raise ValueError(f"calendar activity must be one of {sorted(CALENDAR_ACTIVITIES)}")
        presence, now = self._change(tenant_id, user_id)
        presence.calendar = activity
        self._settle(tenant_id, presence, now, changed=True)
