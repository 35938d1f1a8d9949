"""A small model of Teams and a PBX around the policy, for scenario and property tests.

Teams aggregation follows Graph's documented rules (presence-setuserpreferredpresence.md):
a preferred presence (one slot, shared by the person and apps) beats every session while one
session exists; sessions rank DoNotDisturb > Busy > Available > Away; no session means Offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from m365pbx.core.mapping import DEFAULT_RULES, Channel, CompiledMapping
from m365pbx.core.policy import (
    LineReading,
    PbxReading,
    PersonState,
    Plan,
    PolicyConfig,
    TeamsReading,
    decide,
    observe_line,
    observe_pbx,
    observe_teams,
    record_pbx_written,
    record_preferred_cleared,
    record_preferred_set,
    record_session_cleared,
    record_session_set,
    record_status_written,
)
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    TeamsPresence,
)

OFFLINE = TeamsPresence(Availability.OFFLINE, Activity.OFFLINE)
AVAILABLE = TeamsPresence(Availability.AVAILABLE, Activity.AVAILABLE)
IN_A_CALL = TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)
RANK = {
    Availability.DO_NOT_DISTURB: 4,
    Availability.BUSY: 3,
    Availability.AVAILABLE: 2,
    Availability.AWAY: 1,
}
DEFAULT_CONFIG = PolicyConfig(mapping=CompiledMapping(DEFAULT_RULES))


@dataclass
class World:
    """Teams, a PBX and the policy between them, stepped by hand."""

    config: PolicyConfig = DEFAULT_CONFIG
    now: float = 1_000_000.0
    client: TeamsPresence | None = AVAILABLE
    preferred: TeamsPresence | None = None
    preferred_by: str | None = None
    preferred_expires: float | None = None
    our_session: TeamsPresence | None = None
    our_session_expires: float = 0.0
    pbx_person: PbxPresence = PbxPresence.ONLINE
    pbx_shown: PbxPresence = PbxPresence.ONLINE
    pbx_note: str = ""
    line: LineState = LineState.IDLE
    state: PersonState = field(default_factory=PersonState)
    sequence: int = 0
    writes: list[str] = field(default_factory=list)
    person_preferred_overwritten: bool = False
    # Whether Teams ever showed the person's current choice: one made while signed out
    # (Teams shows Offline) is invisible through Graph and cannot be respected.
    person_choice_seen: bool = False
    # The Teams status message: one slot shared by the person and apps, like the preferred
    # presence; `pbx_person_note` is the note the person set in the PBX.
    message: str = ""
    message_by: str | None = None
    message_expires: float | None = None
    pbx_person_note: str = ""
    person_message_overwritten: bool = False
    # Whether Teams readings carry the status message (notifications usually do not).
    readings_carry_message: bool = True

    # --- what Teams shows -------------------------------------------------------------
    def sessions(self) -> list[TeamsPresence]:
        found = [] if self.client is None else [self.client]
        if self.our_session is not None and self.now < self.our_session_expires:
            found.append(self.our_session)
        return found

    def teams_message(self) -> str:
        if self.message_expires is not None and self.now >= self.message_expires:
            self.message, self.message_by, self.message_expires = "", None, None
        return self.message

    def teams_shows(self) -> TeamsPresence:
        if self.preferred_expires is not None and self.now >= self.preferred_expires:
            self.preferred = self.preferred_by = self.preferred_expires = None
        sessions = self.sessions()
        if not sessions:
            return OFFLINE
        if self.preferred is not None:
            return self.preferred
        return max(sessions, key=lambda p: RANK.get(p.availability, 0))

    # --- feeding the policy --------------------------------------------------------------
    def _seq(self) -> int:
        self.sequence += 1
        return self.sequence

    def deliver_teams(self, full: bool = False) -> None:
        """A Teams reading; `full` is a direct read, which always carries the message."""
        shown = self.teams_shows()
        if self.preferred_by == "person" and shown == self.preferred:
            self.person_choice_seen = True
        message = self.teams_message() if full or self.readings_carry_message else None
        reading = TeamsReading(shown, self.now, f"{self._seq():012d}", message, direct=full)
        self.state, _ = observe_teams(self.state, reading, self.now, self.config)

    def deliver_pbx(self) -> None:
        # A PBX in which our writes and the person's settings share one field.
        shown = self.pbx_person if self.pbx_person is not PbxPresence.ONLINE else self.pbx_shown
        reading = PbxReading(shown, self.now, self.pbx_person_note, self._seq())
        self.state, _ = observe_pbx(self.state, reading, self.now, self.config)

    def deliver_line(self) -> None:
        reading = LineReading(self.line, self.now, self._seq())
        self.state, _ = observe_line(self.state, reading)

    # --- carrying out a plan -------------------------------------------------------------
    def execute(self, plan: Plan) -> None:
        now = self.now
        if plan.pbx is not None:
            self.pbx_shown, self.pbx_note = plan.pbx.presence, plan.pbx.note
            self.state = record_pbx_written(self.state, plan.pbx.presence, plan.pbx.note, now)
            self.writes.append(f"pbx {plan.pbx.presence}")
        if plan.session is not None:
            if plan.session.presence is None:
                self.our_session = None
                self.state = record_session_cleared(self.state, now)
                self.writes.append("clearPresence")
            else:
                lifetime = plan.session.lifetime or 300.0
                self.our_session, self.our_session_expires = plan.session.presence, now + lifetime
                self.state = record_session_set(self.state, plan.session.presence, lifetime, now)
                self.writes.append(f"setPresence {plan.session.presence}")
        if plan.preferred is not None:
            action = plan.preferred
            assert action.channel is Channel.PREFERRED
            if self.preferred_by == "person" and self.person_choice_seen:
                self.person_preferred_overwritten = True
            if action.presence is None:
                self.preferred = self.preferred_by = self.preferred_expires = None
                self.state = record_preferred_cleared(self.state)
                self.writes.append("clearUserPreferredPresence")
            else:
                self.preferred, self.preferred_by = action.presence, "us"
                self.preferred_expires = None if action.lifetime is None else now + action.lifetime
                self.state = record_preferred_set(
                    self.state, action.presence, action.lifetime, now
                )
                self.writes.append(f"setUserPreferredPresence {action.presence}")
        if plan.status is not None:
            text = plan.status.text
            if self.message_by == "person" and self.teams_message():
                self.person_message_overwritten = True
            if text:
                self.message, self.message_by = text, "us"
                self.message_expires = (None if plan.status.lifetime is None
                                        else now + plan.status.lifetime)
            else:
                self.message, self.message_by, self.message_expires = "", None, None
            self.state = record_status_written(self.state, text, plan.status.lifetime, now,
                                               self.config)
            self.writes.append(f"setStatusMessage {text!r}")

    def settle(self, max_rounds: int = 12) -> int:
        """Run the policy and deliver every echo until nothing is left to write."""
        for round_number in range(max_rounds):
            plan = decide(self.state, self.now, self.config)
            if plan.empty:
                return round_number
            self.execute(plan)
            # The echoes of our writes; a plan that asked to read Teams gets a direct read.
            self.deliver_teams(full=plan.read_teams)
            self.deliver_pbx()
        raise AssertionError(f"no fixpoint after {max_rounds} rounds: {self.writes[-12:]}")

    def advance(self, seconds: float) -> None:
        """Let time pass, waking the policy at each time it asked for."""
        end = self.now + seconds
        while True:
            wake = decide(self.state, self.now, self.config).wake_at
            if wake is None or wake > end:
                break
            assert wake > self.now or not decide(self.state, self.now, self.config).empty, (
                f"the policy asks to be woken at {wake}, not after now ({self.now}), "
                "with nothing to do"
            )
            self.now = max(self.now, wake)
            self.settle()
            self.deliver_teams()
            self.settle()
        self.now = end
        self.settle()

    # --- what people do ---------------------------------------------------------------------
    def person_sets_teams(self, presence: TeamsPresence | None) -> None:
        if presence is not None and presence == self.preferred and self.preferred_by == "us":
            # Picking the value we already wrote changes nothing Graph can show: no
            # notification, no way to tell. It stays ours.
            self.deliver_teams()
            self.settle()
            return
        self.preferred = presence
        self.preferred_by = None if presence is None else "person"
        self.person_choice_seen = False
        self.preferred_expires = None
        self.deliver_teams()
        self.settle()

    def person_sets_message(self, text: str, notified: bool = True) -> None:
        """The person types a status message; `notified`: a reading tells us (else silence)."""
        self.message, self.message_by = text, ("person" if text else None)
        self.message_expires = None
        if notified:
            self.deliver_teams()
        self.settle()

    def phone(self, line: LineState) -> None:
        self.line = line
        self.deliver_line()
        self.settle()

    def pbx_person_sets(self, presence: PbxPresence, note: str = "") -> None:
        self.pbx_person = presence
        self.pbx_person_note = note
        self.deliver_pbx()
        self.settle()
