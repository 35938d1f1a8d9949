"""The `calendar:` settings of a PBX connection (docs/calendar.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from m365pbx.config.connections import ApiConnection, CalendarSettings


def test_calendar_is_off_unless_switched_on_with_product_defaults() -> None:
    connection = ApiConnection(name="office", kind="api", tenant="contoso")
    assert connection.calendar == CalendarSettings()
    assert not connection.calendar.enabled
    assert connection.calendar.window == timedelta(hours=36)
    assert connection.calendar.private_note == "Private appointment"


@pytest.mark.parametrize(("settings", "says"), [
    ({"window": "30m"}, "between 1 hour and 7 days"),
    ({"window": "8d"}, "between 1 hour and 7 days"),
    ({"poll_interval": "10s"}, "between 1 minute and 1 day"),
    ({"window": "2h", "poll_interval": "3h"}, "longer than poll_interval"),
    ({"show_tentative": "perhaps"}, "bool"),
])
def test_nonsense_is_refused_with_a_reason(settings: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        CalendarSettings.model_validate({"enabled": True, **settings})
