"""Client authentication at the token endpoint: public clients, secrets and assertions."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from m365sim.entra.assertion import AssertionPolicy, verify_client_assertion
from m365sim.entra.forms import ClientCredential
from m365sim.entra.state import EntraState
from m365sim.errors import AadError
from m365sim.model import AppRegistration, Tenant


def is_public_only(app: AppRegistration) -> bool:
    """A registration with public client flows and no credential at all (desktop/mobile).

    Our choice of model (docs/simulator/entra.md): such an app is a public client, and a
    secret or assertion sent for it is refused with AADSTS700025. An app with public
    client flows *and* credentials may use either.
    """
    return app.public_client and not app.secrets and not app.certificates


def token_endpoint_audiences(origins: set[str], tenant: Tenant, segment: str) -> set[str]:
    """The `aud` values a client assertion may carry for this tenant."""
    segments = {tenant.id, segment, *tenant.domains}
    return {f"{origin.rstrip('/')}/{seg}/oauth2/{path}"
            for origin in origins for seg in segments for path in ("v2.0/token", "token")}


def check_secret(app: AppRegistration, secret: str, now: datetime,
                 new_secret_delay: timedelta) -> None:
    """Raise 7000215 (wrong or brand-new secret) or 7000222 (expired) unless it is good."""
    match = None
    for candidate in app.secrets:
        if hmac.compare_digest(candidate.value.encode(), secret.encode()):
            match = candidate
    if match is None:
        raise AadError("invalid_client", 7000215, app.app_id, status=401)
    if match.expires_at is not None and match.expires_at <= now:
        raise AadError("invalid_client", 7000222, app.app_id, status=401)
    # mapping.md "Failures users report": a secret used right after it was created fails
    # with 7000215 until it has reached every Entra replica.
    if match.created_at is not None and now - match.created_at < new_secret_delay:
        raise AadError("invalid_client", 7000215, app.app_id, status=401)


def authenticate_client(
    state: EntraState,
    app: AppRegistration,
    credential: ClientCredential,
    *,
    now: datetime,
    audiences: set[str],
    credential_required: bool,
) -> None:
    """Raise Entra's error unless the client may use this grant with this credential.

    `credential_required`: client credentials always; the user grants (password, device
    code, refresh token) only when the app does not allow public client flows.
    """
    if not credential.present:
        if credential_required or not app.public_client:
            raise AadError("invalid_client", 7000218)
        return
    if is_public_only(app):
        raise AadError("invalid_client", 700025)
    settings = state.settings
    if credential.secret is not None:
        check_secret(app, credential.secret, now,
                     timedelta(seconds=settings.new_secret_delay_s))
        return
    assert credential.assertion is not None
    verify_client_assertion(app, credential.assertion, AssertionPolicy(
        audiences=audiences, now=now, skew=timedelta(seconds=settings.assertion_clock_skew_s),
        ledger=state.assertion_ids, strict_jti=settings.strict_assertion_jti))
