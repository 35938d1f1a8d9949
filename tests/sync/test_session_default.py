"""One default lifetime for our presence sessions in Teams, wherever a write is made."""

from __future__ import annotations

from datetime import UTC, datetime

from m365pbx.core.mapping import DEFAULT_RULES, Channel, CompiledMapping
from m365pbx.core.policy import DEFAULT_SESSION_LIFETIME, PolicyConfig, TeamsAction
from m365pbx.core.presence import Activity, Availability, TeamsPresence
from m365pbx.sync.pbx_to_teams.requests import request_for

IN_A_CALL = TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)


def test_a_session_write_without_a_lifetime_lasts_the_policys_default() -> None:
    request = request_for("u1", "app", TeamsAction(Channel.SESSION, IN_A_CALL),
                          datetime(2026, 12, 6, tzinfo=UTC))
    assert request.body["expirationDuration"] == "PT15M"
    config = PolicyConfig(CompiledMapping(DEFAULT_RULES))
    assert config.default_session_lifetime == DEFAULT_SESSION_LIFETIME == 900.0
