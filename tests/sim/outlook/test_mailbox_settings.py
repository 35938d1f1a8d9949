"""m365sim serves a mailbox's automatic replies (mailboxSettings) as Graph does
(api-reference/v1.0/api/user-get-mailboxsettings.md, user-update-mailboxsettings.md)."""

from __future__ import annotations

import httpx

from m365sim.model import Tenant, User
from m365sim.simulator import Simulator
from tests.sim.conftest import app_token, bearer, user_token

REPLIES = "/v1.0/users/anna@contoso.com/mailboxSettings/automaticRepliesSetting"


async def test_automatic_replies_are_read_with_mailbox_settings_read_only(
    sim: Simulator, tenant: Tenant, anna: User, client: httpx.AsyncClient,
) -> None:
    reader = bearer(app_token(sim, ["MailboxSettings.Read"]))
    fresh = (await client.get(REPLIES, headers=reader)).json()
    assert fresh["status"] == "disabled" and fresh["externalAudience"] == "all"
    assert fresh["@odata.context"].endswith("/mailboxSettings/automaticRepliesSetting")
    sim.outlook.set_automatic_replies(tenant, anna, {
        "status": "Scheduled",  # Microsoft's own example spells it so
        "scheduledStartDateTime": {"dateTime": "2026-01-06T08:00:00", "timeZone":
                                   "W. Europe Standard Time"},
        "scheduledEndDateTime": {"dateTime": "2026-01-09T18:00:00", "timeZone":
                                 "W. Europe Standard Time"},
        "internal_reply_message": "<p>Back on Friday</p>"})
    replies = (await client.get(REPLIES, headers=reader)).json()
    assert replies["status"] == "scheduled"
    assert replies["scheduledStartDateTime"] == {"dateTime": "2026-01-06T08:00:00.0000000",
                                                 "timeZone": "W. Europe Standard Time"}
    assert replies["internalReplyMessage"] == "<p>Back on Friday</p>"
    whole = (await client.get("/v1.0/users/anna@contoso.com/mailboxSettings",
                              headers=reader)).json()
    assert whole["automaticRepliesSetting"] == {k: v for k, v in replies.items()
                                                if k != "@odata.context"}
    calendars_only = bearer(app_token(sim, ["Calendars.Read"]))
    denied = await client.get(REPLIES, headers=calendars_only)
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "ErrorAccessDenied")


async def test_patch_needs_readwrite_and_refuses_bad_values_changing_nothing(
    sim: Simulator, client: httpx.AsyncClient,
) -> None:
    body = {"automaticRepliesSetting": {"status": "alwaysEnabled"}}
    url = "/v1.0/me/mailboxSettings"
    read_only = bearer(user_token(sim, "anna@contoso.com", ["MailboxSettings.Read"]))
    assert (await client.patch(url, json=body, headers=read_only)).status_code == 403
    writer = bearer(user_token(sim, "anna@contoso.com", ["MailboxSettings.ReadWrite"]))
    done = await client.patch(url, json=body, headers=writer)
    assert done.status_code == 200, done.text
    assert done.json()["automaticRepliesSetting"]["status"] == "alwaysEnabled"
    for bad in ({"status": "sometimes"},
                {"scheduledStartDateTime": {"dateTime": "2026-01-09T00:00:00",
                                            "timeZone": "UTC"},
                 "scheduledEndDateTime": {"dateTime": "2026-01-08T00:00:00",
                                          "timeZone": "UTC"}}):
        refused = await client.patch(url, json={"automaticRepliesSetting": bad}, headers=writer)
        assert refused.status_code == 400, refused.text
    mine = await client.get("/v1.0/me/mailboxSettings/automaticRepliesSetting", headers=writer)
    assert mine.json()["status"] == "alwaysEnabled"
