"""The `contacts:` settings of a PBX connection (docs/contacts.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from m365pbx.config.connections import ApiConnection, ContactsSettings


def test_contacts_are_off_unless_switched_on() -> None:
    connection = ApiConnection(name="office", kind="api", tenant="contoso")
    assert connection.contacts == ContactsSettings()
    assert not connection.contacts.enabled
    assert connection.contacts.poll_interval == timedelta(minutes=15)
    assert (connection.contacts.personal, connection.contacts.directory,
            connection.contacts.organisation) == (True, True, False)


def test_the_region_comes_from_contacts_or_matching() -> None:
    with pytest.raises(ValidationError, match=r"contacts\.phone_region"):
        ApiConnection.model_validate({"name": "office", "kind": "api", "tenant": "contoso",
                                      "contacts": {"enabled": True}})
    own = ApiConnection.model_validate({"name": "office", "kind": "api", "tenant": "contoso",
                                        "contacts": {"enabled": True, "phone_region": "at"}})
    assert own.contacts.phone_region == "AT"
    ApiConnection.model_validate({"name": "office", "kind": "api", "tenant": "contoso",
                                  "matching": {"phone_region": "DE"},
                                  "contacts": {"enabled": True}})


@pytest.mark.parametrize(("settings", "says"), [
    ({"phone_region": "Germany"}, "two-letter region code"),
    ({"poll_interval": "10s"}, "between 1 minute and 1 day"),
    ({"personal": "perhaps"}, "bool"),
])
def test_nonsense_is_refused_with_a_reason(settings: dict[str, str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ContactsSettings.model_validate({"enabled": True, **settings})
