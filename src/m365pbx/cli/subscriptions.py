"""`m365pbx subscriptions takeover`: remove the presence subscription another installation
holds for a service account, so that this installation can create its own.

Graph allows one presence subscription per app and user (graph.md 4.4). When two
installations share an app registration and a service account, the second one gets 409;
Telia's answer is "the last one activated wins", innovaphone shows the 409. m365pbx says so
(the account's state) and leaves the decision to the admin: this command is that decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import EXIT_FAILED, app, fail, reports_input_errors
from m365pbx.cli.signin import account_client, authority_for, declared_account
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.config import Settings, Tenant
    from m365pbx.config.tenants import ServiceAccount
    from m365pbx.graph.auth import TokenSource
    from m365pbx.graph.subscriptions import Subscription
    from m365pbx.store import Repositories

subscriptions_app = Typer(
    name="subscriptions",
    help="Presence subscriptions of the service accounts.",
    no_args_is_help=True,
)
app.add_typer(subscriptions_app, name="subscriptions")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file declaring the account. Default: $M365PBX_CONFIG, "
                      "else ./m365pbx.yaml if present."),
]


def _stored_refresh_token(settings: Settings, upn: str) -> str | None:
    from m365pbx.cli.store_access import in_store

    async def read(tx: Repositories) -> str | None:
        row = await tx.service_accounts.find(upn)
        return None if row is None else tx.service_accounts.refresh_token(row)

    return in_store(settings, read)


def token_source(settings: Settings, tenant: Tenant, account: ServiceAccount) -> TokenSource:
    """The account's delegated tokens: its password, or the sign-in `m365pbx signin` kept."""
    from m365pbx.core.credentials import SignInMethod
    from m365pbx.graph.auth import ServiceAccountTokenSource

    authority = authority_for(settings, tenant)
    client = account_client(tenant, account)
    if account.sign_in is SignInMethod.PASSWORD and account.password is not None:
        return ServiceAccountTokenSource(authority, client, account.upn,
                                         password=account.password.get_secret_value())
    refresh_token = _stored_refresh_token(settings, account.upn)
    if refresh_token is None:
        raise UserInputError(f"service account {account.upn} has not signed in yet; run "
                             f"'m365pbx signin {account.upn}' first", source="--account")
    return ServiceAccountTokenSource(authority, client, account.upn, refresh_token=refresh_token)


async def take_over(settings: Settings, tokens: TokenSource) -> list[Subscription]:
    """Delete every presence subscription of the app and account; return what was deleted."""
    import ssl

    from m365pbx.graph.client import GraphClient
    from m365pbx.graph.errors import NotFound
    from m365pbx.graph.proxy import ProxyChoice, microsoft_http_client
    from m365pbx.graph.subscriptions import delete_subscription, list_subscriptions

    ca_file = settings.microsoft.ca_file
    verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=str(ca_file))
                                     if ca_file else True)
    # The proxy the service uses, so that this works wherever the service does.
    proxy = ProxyChoice.from_environment(settings.microsoft.proxy)
    async with microsoft_http_client(proxy, verify=verify, timeout=15.0) as http:
        client = GraphClient(tokens, http, base_url=str(settings.microsoft.graph_url))
        removed = []
        for subscription in await list_subscriptions(client):
            if "presences" not in subscription.resource:
                continue
            try:
                await delete_subscription(client, subscription.id)
            except NotFound:
                continue  # it lapsed meanwhile: gone all the same
            removed.append(subscription)
        return removed


@subscriptions_app.command("takeover")
@reports_input_errors
def takeover(
    account: Annotated[str, typer.Option("--account", "-a",
                                         help="The service account, e.g. presence@contoso.com.")],
    config: ConfigOption = None,
) -> None:
    """Delete the account's presence subscriptions (also another installation's).

    The other installation stops receiving presence for these people. A running m365pbx
    creates its own subscription at its next attempt.
    """
    import asyncio

    from m365pbx.config import load_config
    from m365pbx.graph.errors import M365Error

    settings = load_config(config)
    tenant, declared = declared_account(settings, account)
    tokens = token_source(settings, tenant, declared)
    try:
        removed = asyncio.run(take_over(settings, tokens))
    except M365Error as exc:
        raise fail(f"cannot take over the subscriptions of {declared.upn}: {exc.describe()}",
                   EXIT_FAILED) from None
    if not removed:
        typer.echo(f"{declared.upn} holds no presence subscription of this app: nothing to "
                   "take over")
        return
    _audit_takeover(settings, declared.upn, removed)
    ours = settings.webhook_url
    for subscription in removed:
        whose = "this installation's" if subscription.notification_url == ours else (
            "another installation's")
        typer.echo(f"deleted {whose} presence subscription {subscription.id} of "
                   f"{declared.upn} (it delivered to {subscription.notification_url})")
    typer.echo("m365pbx creates its own subscription for this account at its next attempt "
               "(within minutes; at once after a restart)")


def _audit_takeover(settings: Settings, upn: str, removed: list[Subscription]) -> None:
    """Record the takeover in the audit trail (which subscriptions, where they delivered)."""
    from datetime import UTC, datetime

    from m365pbx.cli.store_access import in_store

    async def work(tx: Repositories) -> None:
        await tx.audit.append(
            at=datetime.now(UTC), actor="cli", action="subscription.takeover",
            object_type="service_account", object_id=upn,
            details={"deleted": [s.id for s in removed],
                     "delivered_to": sorted({s.notification_url for s in removed})})

    in_store(settings, work)
