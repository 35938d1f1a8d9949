"""Runs every check in order: hosts, then each tenant, the public URL, the PBX connections."""

from __future__ import annotations

import httpx

from m365pbx.check.accounts import AccountResult, check_account, graph_client
from m365pbx.check.capacity import check_capacity
from m365pbx.check.consent import check_consent
from m365pbx.check.context import CheckContext
from m365pbx.check.features import plan_tenant, uses_webhooks
from m365pbx.check.findings import Finding, Status, warn
from m365pbx.check.hosts import check_hosts
from m365pbx.check.pbx import check_connections
from m365pbx.check.public_url import check_public_url, unused_warning
from m365pbx.config import Tenant
from m365pbx.graph.client import GraphClient


async def check_tenant(ctx: CheckContext, tenant: Tenant,
                       http: httpx.AsyncClient) -> list[Finding]:
    """The tenant's credentials and permissions, its service accounts and their capacity."""
    plan = plan_tenant(ctx.settings, tenant)
    findings, signed_in = await check_consent(ctx, tenant, plan)
    reader: GraphClient | None = None
    if plan.reader is not None and plan.reader.name in signed_in:
        reader = graph_client(ctx, signed_in[plan.reader.name].tokens, http)
    accounts: list[AccountResult] = []
    for account in tenant.service_accounts:
        found, result = await check_account(ctx, tenant, account, plan, reader)
        findings += found
        accounts.append(result)
    if uses_webhooks(ctx.settings) and tenant.service_accounts:
        findings += await check_capacity(ctx.settings, tenant, accounts, reader)
    return findings


async def run_checks(ctx: CheckContext) -> list[Finding]:
    """Every finding about the installation, in the order an admin fixes them."""
    settings = ctx.settings
    findings: list[Finding] = []
    async with ctx.microsoft_client() as http:
        hosts = await check_hosts(ctx, http)
        findings += hosts
        login_down = any(f.subject == "sign-in host" and f.status is Status.FAIL for f in hosts)
        if not settings.tenants:
            findings.append(warn("tenants", "configuration", "no tenant is declared: m365pbx "
                                 "has nothing to connect", "Declare a tenant (see 'm365pbx "
                                 "config example')."))
        for tenant in settings.tenants:
            if login_down:
                findings.append(warn(
                    "tenants", f"tenant {tenant.name}", "not checked: the sign-in host cannot "
                    "be reached (see above)", "Fix the way to the sign-in host, then run "
                    "the check again."))
                continue
            findings += await check_tenant(ctx, tenant, http)
    findings += await check_public_url(settings, wait_s=ctx.timeout)
    if (unused := unused_warning(settings)) is not None:
        findings.append(unused)
    findings += await check_connections(settings, ctx.timeout)
    return findings
