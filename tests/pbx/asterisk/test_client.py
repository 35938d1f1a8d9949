"""The AMI client against a real Asterisk 22: login, actions, lists, events, refusals, reconnect."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from m365pbx.pbx.asterisk import AmiError, AmiMessage, AmiPermissionError
from tests.pbx.asterisk.helpers import client_for, until
from tests.pbx.asterisk.server import AMI_SECRET, AsteriskServer
from tests.pbx.sip.kamailio import free_port


async def test_actions_lists_and_events(asterisk: AsteriskServer) -> None:
    client = client_for(asterisk)
    events: list[AmiMessage] = []
    client.on_event = events.append
    client.start()
    try:
        assert await client.wait_connected(30)
        assert client.banner is not None and client.banner.startswith("Asterisk Call Manager/")
        pong = await client.action("Ping")
        assert pong.get("Ping") == "Pong"
        await client.action("Setvar", Variable="DEVICE_STATE(Custom:2002-teams)", Value="INUSE")
        await until(lambda: any(e.get("Device") == "Custom:2002-teams"
                                and e.get("State") == "INUSE" for e in events))
        # Concurrent actions each get their own answer (ActionID correlation).
        answers = await asyncio.gather(*(client.action(
            "Getvar", Variable="DEVICE_STATE(Custom:2002-teams)") for _ in range(20)))
        assert {a.get("Value") for a in answers} == {"INUSE"}
        response, items = await client.list_action("DeviceStateList")
        assert response.get("EventList") == "start"
        assert ("Custom:2002-teams", "INUSE") in {(m.get("Device"), m.get("State"))
                                                   for m in items}
        assert items[-1].get("EventList") == "Complete"
        # List events belong to their action: the event stream does not get them again.
        assert not any(e.action_id for e in events)
        with pytest.raises(AmiError, match=r"NoSuchAction: \w+"):
            await client.action("NoSuchAction")
    finally:
        await client.stop()


async def test_a_wrong_secret_is_reported_in_words_without_the_secret(
    asterisk: AsteriskServer,
) -> None:
    client = client_for(asterisk, secret="not-" + AMI_SECRET)
    client.start()
    try:
        await until(lambda: client.auth_failed)
        assert not client.connected
        assert client.error is not None
        assert "refused the AMI login of user 'm365pbx'" in client.error
        assert "manager.conf" in client.error
        assert AMI_SECRET not in client.error
    finally:
        await client.stop()


async def test_an_action_outside_the_users_write_classes_is_a_permission_error(
    asterisk: AsteriskServer,
) -> None:
    client = client_for(asterisk, user="callonly", secret="callonly-pw")
    client.start()
    try:
        assert await client.wait_connected(30)
        with pytest.raises(AmiPermissionError) as caught:
            await client.list_action("DBGetTree", Family="DND")
        assert caught.value.action == "DBGetTree"
        assert (await client.action("Ping")).get("Ping") == "Pong"  # still connected
    finally:
        await client.stop()


async def test_it_logs_in_again_after_asterisk_restarts(own_asterisk: AsteriskServer) -> None:
    client = client_for(own_asterisk, keepalive=1.0)
    logins = 0

    async def connected() -> None:
        nonlocal logins
        logins += 1

    client.on_connected = connected
    client.start()
    try:
        await until(lambda: logins == 1)
        await asyncio.to_thread(own_asterisk.stop)
        await until(lambda: not client.connected)
        with pytest.raises(AmiError):
            await client.action("Ping")  # fails fast while down
        assert client.error is not None
        await asyncio.to_thread(own_asterisk.start)
        await until(lambda: logins == 2, within=60)
        assert (await client.action("Ping")).get("Ping") == "Pong"
        assert client.error is None
    finally:
        await client.stop()


async def test_a_peer_that_is_not_asterisk_is_named_as_such() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        with contextlib.suppress(OSError):
            await writer.drain()
            await reader.read(100)
        writer.close()

    port = free_port()
    server = await asyncio.start_server(http, "127.0.0.1", port)
    from m365pbx.pbx.asterisk import AmiClient, AmiOptions
    from tests.pbx.asterisk.helpers import FAST

    client = AmiClient(AmiOptions("127.0.0.1", port, "u", "s", backoff=FAST, timeout=3))
    client.start()
    try:
        await until(lambda: client.error is not None and "AMI" in client.error)
        assert client.error is not None
        assert "does not speak AMI" in client.error or "did not answer" in client.error
        assert not client.connected
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()
