"""`m365pbx signin UPN`: sign a service account in once with a device code (works with MFA).

Microsoft enforces MFA more and more, and a password alone then cannot sign a service
account in (AADSTS50076; mapping.md "A technical user with MFA cannot be used"). The
device-code flow lets a person sign the account in on any browser, MFA included; m365pbx
keeps the refresh token it gets, encrypted in the store, and the service renews it from then
on (`Service._stored_sign_ins`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from m365pbx.cli.app import EXIT_FAILED, app, fail, reports_input_errors
from m365pbx.errors import UserInputError

if TYPE_CHECKING:
    from m365pbx.config import Settings, Tenant
    from m365pbx.config.tenants import ServiceAccount
    from m365pbx.graph.auth import Authority, ClientCredential, DeviceCodeSignIn
    from m365pbx.store import Repositories

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file declaring the account. Default: $M365PBX_CONFIG, "
                      "else ./m365pbx.yaml if present."),
]


def declared_account(settings: Settings, upn: str) -> tuple[Tenant, ServiceAccount]:
    """The tenant and declaration of the service account with this UPN (any case)."""
    wanted = upn.strip().casefold()
    for tenant in settings.tenants:
        for account in tenant.service_accounts:
            if account.upn.casefold() == wanted:
                return tenant, account
    declared = [a.upn for t in settings.tenants for a in t.service_accounts]
    known = ", ".join(declared) if declared else "none"
    raise UserInputError(f"no service account {upn!r} is declared in the configuration "
                         f"(declared: {known})", source="UPN")


def authority_for(settings: Settings, tenant: Tenant) -> Authority:
    """Where the tenant's accounts sign in, trusting the configured CA file if any."""
    from m365pbx.graph.auth import Authority
    from m365pbx.graph.proxy import ProxyChoice

    ca_file = settings.microsoft.ca_file
    return Authority(str(tenant.tenant_id), host=str(settings.microsoft.login_url).rstrip("/"),
                     verify=str(ca_file) if ca_file else True,
                     proxy=ProxyChoice.from_environment(settings.microsoft.proxy))


def account_client(tenant: Tenant, account: ServiceAccount) -> ClientCredential:
    """The app a service account signs in through, as a public client (as the service does)."""
    from m365pbx.graph.auth import ClientCredential

    credential = next(c for c in tenant.credentials if c.name == account.credential)
    return ClientCredential(str(credential.client_id))


async def _device_code(flow: DeviceCodeSignIn, upn: str) -> tuple[str, str]:
    prompt = await flow.start()
    # Microsoft's own sentence names the URL and the code; flushed at once because the
    # person (or a script reading a pipe) needs it while this command waits.
    typer.echo(prompt.message or f"To sign in, use a web browser to open the page "
               f"{prompt.verification_uri} and enter the code {prompt.user_code} to "
               "authenticate.")
    typer.echo(f"Sign in there as {upn}. Waiting up to {max(1, prompt.expires_in // 60)} "
               "minutes ...", err=True)
    sys.stdout.flush()
    result = await flow.finish(prompt)
    return result.upn, result.refresh_token


@app.command("signin")
@reports_input_errors
def signin(
    upn: Annotated[str, typer.Argument(help="The service account, e.g. presence@contoso.com.")],
    config: ConfigOption = None,
) -> None:
    """Sign a service account in with a device code (MFA works) and keep its sign-in.

    The account must be declared with 'sign_in: device_code'. The refresh token is stored
    encrypted in the database and never shown.
    """
    import asyncio

    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.core.credentials import SignInMethod
    from m365pbx.declarations import declarations_from_settings
    from m365pbx.graph.auth import DeviceCodeSignIn
    from m365pbx.graph.errors import M365Error

    settings = load_config(config)
    tenant, account = declared_account(settings, upn)
    if account.sign_in is not SignInMethod.DEVICE_CODE:
        raise UserInputError(
            f"service account {account.upn} is declared with 'sign_in: "
            f"{account.sign_in.value}'; declare it with 'sign_in: device_code' (and no "
            "password) to sign it in with a device code", source="UPN")
    flow = DeviceCodeSignIn(authority_for(settings, tenant), account_client(tenant, account))
    try:
        signed_in, refresh_token = asyncio.run(_device_code(flow, account.upn))
    except M365Error as exc:
        raise fail(f"the sign-in of {account.upn} failed: {exc.describe()}",
                   EXIT_FAILED) from None
    if signed_in and signed_in.casefold() != account.upn.casefold():
        raise fail(f"the code was entered by {signed_in}, not {account.upn}: nothing was "
                   f"stored. Run the command again and sign in as {account.upn}.", EXIT_FAILED)

    async def keep(tx: Repositories) -> None:
        # The account row exists once the file's declarations are in the store.
        await tx.sync_declared(declarations_from_settings(settings))
        row = await tx.service_accounts.find(account.upn)
        if row is None:  # pragma: no cover - sync_declared just wrote it
            raise UserInputError(f"service account {account.upn} is not in the store")
        await tx.service_accounts.set_refresh_token(row.id, refresh_token)

    in_store(settings, keep)
    typer.echo(f"signed in as {account.upn}; the sign-in is stored encrypted in the database. "
               "m365pbx uses it from its next start (restart it if it is running).")
