"""Each PBX connection: a SIP presence server answers OPTIONS; the API has nothing to reach."""

from __future__ import annotations

from m365pbx.check.findings import Finding, fail, ok
from m365pbx.config import Settings
from m365pbx.config.connections import ApiConnection, SipConnection

AREA = "pbx"


async def sip_options(connection: SipConnection, wait_s: float) -> Finding:
    """Send one OPTIONS to the presence server; any SIP answer proves it is reachable."""
    # The SIP stack is loaded only when a SIP connection is checked.
    from m365pbx.pbx.sip.health import ServerHealth
    from m365pbx.pbx.sip.useragent import UaConfig, UserAgent

    settings = connection.settings
    subject = f"connection {connection.name}"
    where = f"{settings.host}:{settings.port} over {settings.transport.value.upper()}"
    ua = UserAgent(UaConfig(server=(settings.host, settings.port),
                            transport=settings.transport.value,
                            local_port=settings.listen_port))
    probe = ServerHealth(ua, settings.domain, interval=wait_s, timeout=wait_s,
                         on_down=lambda: None, on_up=lambda _restarted: None)
    try:
        answered = await probe.probe()
    finally:
        await ua.close()
    if answered:
        return ok(AREA, subject, f"the SIP presence server at {where} answers OPTIONS")
    return fail(AREA, subject, f"{probe.error or 'the presence server does not answer'} "
                f"(OPTIONS to {where}, waited {wait_s:g} s)",
                "Check settings.server and settings.transport, that the server runs, and "
                "that the firewall lets SIP through both ways (the server answers to "
                "settings.listen_port, or any port when it is 0).")


async def check_connections(settings: Settings, wait_s: float) -> list[Finding]:
    """One finding per PBX connection."""
    findings: list[Finding] = []
    for connection in settings.pbx_connections:
        if isinstance(connection, SipConnection):
            findings.append(await sip_options(connection, wait_s))
        elif isinstance(connection, ApiConnection):
            findings.append(ok(AREA, f"connection {connection.name}",
                               "the built-in presence API has nothing to reach: PBX apps "
                               "connect to m365pbx at /api/v1 with an API key"))
    return findings
