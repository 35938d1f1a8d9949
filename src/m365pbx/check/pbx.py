"""Each PBX connection: a SIP presence server answers OPTIONS, an Asterisk lets us log in and
do our actions; the API has nothing to reach."""

from __future__ import annotations

from m365pbx.check.findings import Finding, fail, ok
from m365pbx.config import Settings
from m365pbx.config.connections import ApiConnection, AsteriskConnection, SipConnection

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


async def asterisk_login(connection: AsteriskConnection, wait_s: float) -> Finding:
    """Log in to the AMI, run the resync's actions and read DND: any refusal in words."""
    # The AMI client is loaded only when an Asterisk connection is checked.
    import asyncio
    import contextlib

    from m365pbx.clock import SystemClock
    from m365pbx.pbx.asterisk import AmiError
    from m365pbx.service.connections import asterisk_connection

    settings = connection.settings
    subject = f"connection {connection.name}"
    where = f"the AMI at {settings.host}:{settings.port}"
    pbx = asterisk_connection(connection, SystemClock())
    await pbx.start()
    try:
        # A refused login never resyncs: stop waiting at the refusal. The resync's probe of
        # call events takes up to 5 s more than the login.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s + 6
        while not (pbx.resynced.is_set() or pbx.client.auth_failed) and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pbx.resynced.wait(), 0.1)
        problems: list[str] = []
        if pbx.resynced.is_set():
            if settings.dnd_family:
                with contextlib.suppress(AmiError):
                    await pbx.read_dnd()
            if connection.users_file is None:
                with contextlib.suppress(AmiError):
                    await pbx.list_users()
        status = pbx.status()
        if status.last_error:
            problems.append(status.last_error)
        elif not pbx.resynced.is_set():
            problems.append(f"{where} did not let us log in within {wait_s:g} s")
    finally:
        await pbx.stop()
    if not problems:
        return ok(AREA, subject, f"{where} accepts our login, state changes and events")
    return fail(AREA, subject, "; ".join(problems),
                "Check settings.host, port, username and secret, and the AMI user's read= and "
                "write= classes in manager.conf (docs/asterisk.md).")


async def check_connections(settings: Settings, wait_s: float) -> list[Finding]:
    """One finding per PBX connection."""
    findings: list[Finding] = []
    for connection in settings.pbx_connections:
        if isinstance(connection, SipConnection):
            findings.append(await sip_options(connection, wait_s))
        elif isinstance(connection, AsteriskConnection):
            findings.append(await asterisk_login(connection, wait_s))
        elif isinstance(connection, ApiConnection):
            findings.append(ok(AREA, f"connection {connection.name}",
                               "the built-in presence API has nothing to reach: PBX apps "
                               "connect to m365pbx at /api/v1 with an API key"))
    return findings
