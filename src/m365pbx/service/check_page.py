"""`m365pbx check` from inside the running service (the admin UI's check page).

The same checks as the CLI, with the service's clock and store: device-code accounts'
stored sign-ins are read from the open store instead of opening the database again.
"""

from __future__ import annotations

from m365pbx.check import CheckContext, Finding, run_checks
from m365pbx.clock import Clock
from m365pbx.config import Settings
from m365pbx.core.credentials import SignInMethod
from m365pbx.store import Store


async def stored_refresh_tokens(settings: Settings, store: Store) -> tuple[dict[str, str], str]:
    """The device-code accounts' stored refresh tokens by UPN (casefolded), and why not."""
    upns = [account.upn for tenant in settings.tenants for account in tenant.service_accounts
            if account.sign_in is SignInMethod.DEVICE_CODE]
    found: dict[str, str] = {}
    if not upns:
        return found, ""
    try:
        async with store.transaction() as tx:
            for upn in upns:
                row = await tx.service_accounts.find(upn)
                token = None if row is None else tx.service_accounts.refresh_token(row)
                if token:
                    found[upn.casefold()] = token
    except Exception as exc:  # the check reports it; the page must still show the rest
        return {}, f"the stored sign-ins cannot be read ({type(exc).__name__})"
    return found, ""


async def run_check(settings: Settings, store: Store, clock: Clock,
                    wait: float = 10.0) -> list[Finding]:
    """Every finding of `m365pbx check`, as the running service sees its installation."""
    tokens, problem = await stored_refresh_tokens(settings, store)
    return await run_checks(CheckContext(settings, clock=clock, timeout=wait,
                                         refresh_tokens=tokens, store_problem=problem))
