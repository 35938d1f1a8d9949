"""POST /v1.0/subscriptions: the checks Graph makes and the validation handshake."""

from __future__ import annotations

import urllib.parse
from datetime import timedelta

import httpx
import pytest

from m365sim.simulator import Simulator
from tests.sim.conftest import TENANT_ID, app_token, bearer, user_token
from tests.sim.schemas import fixture, validator
from tests.sim.subscriptions.conftest import HOOK, subscription_body, svc_headers, user_id
from tests.sim.subscriptions.helpers import EncryptionKey, Receiver

pytestmark = pytest.mark.usefixtures("running")


async def _create(client: httpx.AsyncClient, sim: Simulator, body: dict[str, object],
                  headers: dict[str, str] | None = None) -> httpx.Response:
    return await client.post("/v1.0/subscriptions", json=body,
                             headers=headers or svc_headers(sim))


async def test_presence_subscription_is_created_after_the_endpoint_echoes_the_token(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}")
    response = await _create(client, sim, body)
    assert response.status_code == 201, response.text
    created = response.json()
    validator("types/subscription.json").validate(created)
    assert set(fixture("subscription-create.response.json")) <= set(created)
    assert created["resource"] == f"communications/presences/{anna}"
    assert created["applicationId"] == "6731de76-14a6-49ae-97bc-6eba6914391e"
    assert created["creatorId"] == user_id(sim, "svc-presence@contoso.com")
    assert created["clientState"] == "secret-state"
    assert created["expirationDateTime"].endswith("0Z") and len(
        created["expirationDateTime"]) == len("2016-11-20T18:23:45.9356913Z")
    # The handshake: one POST with the token in the query, text/plain, URL-encoded.
    [check] = receiver.validations
    assert check["path"] == "/api/notify"
    assert check["content_type"] == "text/plain; charset=utf-8"
    assert " " in check["token"]
    assert "validationToken=" + urllib.parse.quote(check["token"], safe="") == check["raw_query"]


@pytest.mark.parametrize(("mode", "code", "message"), [
    ("status", "ValidationError", "Notification endpoint must respond with 200 OK"),
    ("wrong-body", "ValidationError", "Response must exactly match validationToken"),
    ("html", "ValidationError", "Response must exactly match validationToken"),
])
async def test_failed_handshake_fails_the_create_and_leaves_no_subscription(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver, mode: str, code: str,
    message: str,
) -> None:
    receiver.validation_mode = mode
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}")
    response = await _create(client, sim, body)
    assert response.status_code == 400
    error = response.json()
    validator("types/odata-error.json").validate(error)
    assert error["error"]["code"] == code and message in error["error"]["message"]
    listed = await client.get("/v1.0/subscriptions", headers=svc_headers(sim))
    assert listed.json()["value"] == []
    assert sim.subscriptions.subscriptions == {}


async def test_handshake_must_answer_within_the_validation_timeout(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    sim.subscriptions.settings.validation_timeout_s = 0.05
    receiver.validation_delay_s = 0.3
    response = await _create(client, sim, subscription_body(sim, "users", changeType="updated"),
                             headers=bearer(app_token(sim)))
    assert response.status_code == 400
    assert response.json()["error"] == {
        **response.json()["error"], "code": "InvalidRequest",
        "message": "Subscription validation request timed out."}


async def test_an_unreachable_endpoint_fails_the_create(sim: Simulator,
                                                        client: httpx.AsyncClient) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sim.subscriptions.transport = httpx.MockTransport(refuse)
    response = await _create(client, sim, subscription_body(sim, "users"),
                             headers=bearer(app_token(sim)))
    assert response.status_code == 400
    assert "connection refused" in response.json()["error"]["message"]


async def test_lifecycle_url_is_validated_too_even_when_it_is_the_same_url(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}",
                             lifecycleNotificationUrl=HOOK)
    assert (await _create(client, sim, body)).status_code == 201
    assert len(receiver.validations) == 2


async def test_query_string_of_the_notification_url_is_kept(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = subscription_body(sim, "users", notificationUrl=HOOK + "?tenant=contoso&x=1")
    response = await _create(client, sim, body, headers=bearer(app_token(sim)))
    assert response.status_code == 201
    assert response.json()["notificationUrl"] == HOOK + "?tenant=contoso&x=1"
    assert receiver.validations[0]["query"]["tenant"] == "contoso"
    assert receiver.validations[0]["query"]["x"] == "1"


async def test_plain_http_is_refused_unless_allowed_for_loopback(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    headers = bearer(app_token(sim))
    local = subscription_body(sim, "users", notificationUrl="http://127.0.0.1:9/hook")
    refused = await _create(client, sim, local, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "NotificationUrl scheme='http' is not supported."
    sim.subscriptions.settings.allow_http_loopback = True
    assert (await _create(client, sim, local, headers=headers)).status_code == 201
    remote = subscription_body(sim, "users", notificationUrl="http://hooks.contoso.test/hook")
    assert (await _create(client, sim, remote, headers=headers)).status_code == 400
    garbage = subscription_body(sim, "users", notificationUrl="not a url")
    answer = await _create(client, sim, garbage, headers=headers)
    assert answer.json()["error"]["message"] == "Invalid notification url='not a url'."


@pytest.mark.parametrize(("resource", "change_type", "limit"), [
    ("communications/presences/{anna}", "updated", 60),
    ("users", "updated,deleted", 41_760),
    ("users/{anna}/events", "created,updated,deleted", 4_230),
    ("users/{anna}/contacts", "created", 4_230),
])
async def test_expiry_beyond_the_resource_maximum_is_refused(
    sim: Simulator, client: httpx.AsyncClient, resource: str, change_type: str, limit: int
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    path = resource.format(anna=anna)
    scopes = ["Presence.Read.All", "User.Read.All", "Calendars.Read", "Contacts.Read"]
    headers = bearer(user_token(sim, "anna@contoso.com", scopes))
    over = subscription_body(sim, path, minutes=limit + 1, changeType=change_type)
    response = await _create(client, sim, over, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ExtensionError"
    assert response.json()["error"]["message"] == (
        f"Subscription expiration can only be {limit} minutes in the future.")
    exact = subscription_body(sim, path, minutes=limit, changeType=change_type)
    assert (await _create(client, sim, exact, headers=headers)).status_code == 201


async def test_expiry_in_the_past_is_refused(sim: Simulator, client: httpx.AsyncClient) -> None:
    body = subscription_body(sim, "users", minutes=-1)
    response = await _create(client, sim, body, headers=bearer(app_token(sim)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequest"


async def test_client_state_is_limited_to_128_characters(sim: Simulator,
                                                         client: httpx.AsyncClient) -> None:
    headers = bearer(app_token(sim))
    too_long = subscription_body(sim, "users", clientState="x" * 129)
    assert (await _create(client, sim, too_long, headers=headers)).status_code == 400
    longest = subscription_body(sim, "users", clientState="x" * 128)
    assert (await _create(client, sim, longest, headers=headers)).status_code == 201


async def test_rich_notifications_need_a_usable_certificate(
    sim: Simulator, client: httpx.AsyncClient, encryption_key: EncryptionKey
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    resource = f"communications/presences/{anna}"
    missing = subscription_body(sim, resource, includeResourceData=True)
    assert (await _create(client, sim, missing)).status_code == 400
    no_id = subscription_body(sim, resource, includeResourceData=True,
                              encryptionCertificate=encryption_key.certificate_b64)
    assert (await _create(client, sim, no_id)).status_code == 400
    garbage = subscription_body(sim, resource, includeResourceData=True,
                                encryptionCertificate="AAAAB3NzaC1yc2E=",
                                encryptionCertificateId="k1")
    answer = await _create(client, sim, garbage)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("Certificate validation error")
    users = subscription_body(sim, "users", includeResourceData=True,
                              encryptionCertificate=encryption_key.certificate_b64,
                              encryptionCertificateId="k1")
    assert (await _create(client, sim, users, headers=bearer(app_token(sim)))).status_code == 400
    good = subscription_body(sim, resource, includeResourceData=True,
                             encryptionCertificate=encryption_key.certificate_b64,
                             encryptionCertificateId="k1")
    created = await _create(client, sim, good)
    assert created.status_code == 201
    assert created.json()["includeResourceData"] is True
    assert created.json()["encryptionCertificateId"] == "k1"


async def test_presence_cannot_be_subscribed_with_an_application_token(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}")
    response = await _create(client, sim, body, headers=bearer(app_token(sim)))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ExtensionError"
    assert "Forbidden" in response.json()["error"]["message"]


async def test_delegated_token_without_the_permission_is_refused(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, f"communications/presences/{anna}")
    response = await _create(client, sim, body, headers=svc_headers(sim, ["User.Read.All"]))
    assert response.status_code == 403
    no_token = await client.post("/v1.0/subscriptions", json=body)
    assert no_token.status_code == 401
    assert no_token.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_second_presence_subscription_of_the_same_user_and_app_conflicts(
    sim: Simulator, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    ben = user_id(sim, "ben@contoso.com")
    first = subscription_body(sim, f"communications/presences/{anna}")
    assert (await _create(client, sim, first)).status_code == 201
    second = subscription_body(sim, f"/communications/presences?$filter=id in ('{ben}')")
    response = await _create(client, sim, second)
    assert response.status_code == 409
    expected = fixture("subscription-conflict-presence.response.json")
    assert response.json()["error"]["code"] == expected["error"]["code"]
    assert response.json()["error"]["message"] == expected["error"]["message"]
    assert set(response.json()["error"]["innerError"]) == set(expected["error"]["innerError"])
    assert len(receiver.validations) == 1  # refused before the endpoint was bothered
    # Another signed-in user of the same app may hold their own.
    other = bearer(user_token(sim, "anna@contoso.com"))
    assert (await _create(client, sim, second, headers=other)).status_code == 201


async def test_bulk_presence_takes_up_to_650_ids(sim: Simulator,
                                                client: httpx.AsyncClient) -> None:
    import uuid

    ids = [str(uuid.uuid4()) for _ in range(651)]
    resource = "/communications/presences?$filter=id in ({})"
    too_many = subscription_body(sim, resource.format(",".join(f"'{i}'" for i in ids)))
    response = await _create(client, sim, too_many)
    assert response.status_code == 400
    assert "650" in response.json()["error"]["message"]
    request = fixture("subscription-create-presence-bulk.request.json")
    bulk = subscription_body(sim, request["resource"])
    assert (await _create(client, sim, bulk)).status_code == 201
    not_guids = subscription_body(sim, "/communications/presences?$filter=id in ('anna')")
    headers = bearer(user_token(sim, "anna@contoso.com"))
    assert (await _create(client, sim, not_guids, headers=headers)).status_code == 400
    max_ids = subscription_body(sim, resource.format(",".join(f"'{i}'" for i in ids[:650])))
    assert (await _create(client, sim, max_ids, headers=headers)).status_code == 201


@pytest.mark.parametrize(("resource", "change_type"), [
    ("communications/presences/{anna}", "created"),
    ("communications/presences/{anna}", "updated,deleted"),
    ("users", "created"),
    ("users/{anna}/events", "moved"),
])
async def test_change_types_the_resource_does_not_support_are_refused(
    sim: Simulator, client: httpx.AsyncClient, resource: str, change_type: str
) -> None:
    anna = user_id(sim, "anna@contoso.com")
    body = subscription_body(sim, resource.format(anna=anna), changeType=change_type)
    headers = bearer(user_token(sim, "anna@contoso.com",
                                ["Presence.Read.All", "User.Read.All", "Calendars.Read"]))
    response = await _create(client, sim, body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequest"


async def test_bad_bodies_get_graphs_errors(sim: Simulator, client: httpx.AsyncClient) -> None:
    headers = bearer(app_token(sim))
    missing = subscription_body(sim, "users")
    del missing["expirationDateTime"]
    answer = await _create(client, sim, missing, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "expirationDateTime is a required property for subscription creation.")
    malformed = await client.post("/v1.0/subscriptions", content=b"{not json",
                                  headers={**headers, "Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "BadRequest"
    text = await client.post("/v1.0/subscriptions", content=b"x",
                             headers={**headers, "Content-Type": "text/plain"})
    assert text.status_code == 415
    unknown = subscription_body(sim, "users", notifyMe=True)
    answer = await _create(client, sim, unknown, headers=headers)
    assert answer.status_code == 400 and "notifyMe" in answer.json()["error"]["message"]
    not_object = await client.post("/v1.0/subscriptions", json=[1], headers=headers)
    assert not_object.status_code == 400
    wrong_type = subscription_body(sim, "users", expirationDateTime=12)
    assert (await _create(client, sim, wrong_type, headers=headers)).status_code == 400
    bad_date = subscription_body(sim, "users", expirationDateTime="2026-01-5T10:00:00Z")
    assert (await _create(client, sim, bad_date, headers=headers)).status_code == 400
    for body in (malformed, text, answer):
        validator("types/odata-error.json").validate(body.json())


async def test_resources_it_cannot_subscribe_to_are_refused(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    app = bearer(app_token(sim, ["User.Read.All", "Calendars.Read"]))
    me = await _create(client, sim, subscription_body(sim, "me/events"), headers=app)
    assert me.status_code == 400
    assert me.json()["error"]["message"] == (
        "/me request is only valid with delegated authentication flow.")
    unknown = await _create(client, sim, subscription_body(sim, "me/mailFolders('Inbox')/messages"),
                            headers=svc_headers(sim))
    assert unknown.status_code == 400
    nobody = await _create(client, sim, subscription_body(sim, "users/nobody@contoso.com"),
                           headers=app)
    assert nobody.status_code == 404


async def test_delegated_events_of_another_mailbox_are_refused(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    ben = user_id(sim, "ben@contoso.com")
    headers = bearer(user_token(sim, "anna@contoso.com", ["Calendars.Read"]))
    body = subscription_body(sim, f"users/{ben}/events", changeType="created")
    assert (await _create(client, sim, body, headers=headers)).status_code == 403
    own = subscription_body(sim, "me/events", changeType="created")
    response = await _create(client, sim, own, headers=headers)
    assert response.status_code == 201
    assert response.json()["creatorId"] == user_id(sim, "anna@contoso.com")


async def test_upn_in_the_resource_is_accepted(sim: Simulator, client: httpx.AsyncClient) -> None:
    body = subscription_body(sim, "users/anna@contoso.com", minutes=24 * 60)
    response = await _create(client, sim, body, headers=bearer(app_token(sim)))
    assert response.status_code == 201
    [stored] = sim.subscriptions.subscriptions.values()
    assert stored.target.user_ids == {user_id(sim, "anna@contoso.com")}
    assert stored.tenant_id == TENANT_ID
    assert stored.expiration - sim.clock.now() == timedelta(hours=24)
