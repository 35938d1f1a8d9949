"""Recovery against a real Kamailio: clean restart, crash, and a server that starts late."""

from __future__ import annotations

from pathlib import Path

from m365pbx.core.presence import LineState, PbxPresence
from m365pbx.pbx.base import ConnectionState, LineStateEvent, PbxUser
from m365pbx.pbx.sip import SipConnection
from tests.pbx.sip.helpers import EventReader, Phone, connect, options, wait_until
from tests.pbx.sip.kamailio import KamailioServer, free_port
from tests.pbx.sip.sipp import Watcher


def person(name: str) -> PbxUser:
    return PbxUser(name, {"extension": name})


async def see(tmp_path: Path, server: KamailioServer, user: str, pattern: str) -> None:
    """An independent watcher (SIPp) subscribing now must see `pattern`."""
    watcher = Watcher(tmp_path, server.port, user, pattern)
    await watcher.start()
    run = await watcher.result()
    assert run.returncode == 0, (pattern, run.notify_bodies, run.output)


async def outage(connection: SipConnection, server: KamailioServer, *, clean: bool) -> None:
    """Stop or crash the server, wait until the connection notices, start it again."""
    if clean:
        server.stop()
    else:
        server.kill()
    await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED)
    status = connection.status()
    assert status.last_error and "does not answer" in status.last_error
    assert status.since is not None
    server.start()
    await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)


async def check_recovery(
    own_kamailio: KamailioServer, tmp_path: Path, *, clean: bool, transport: str = "udp"
) -> None:
    connection = await connect(own_kamailio, transport=transport)
    reader = EventReader(connection)
    phone = await Phone(own_kamailio, "ivan").start()
    try:
        await connection.set_presence(person("ivan"), PbxPresence.DND, "")
        await connection.set_presence(person("jane"), PbxPresence.AWAY, "")
        await connection.watch([person("ivan")])
        await reader.wait_for(lambda e: isinstance(e, LineStateEvent))

        await outage(connection, own_kamailio, clean=clean)

        # Published before the outage: shown again (re-asserted after a crash).
        await see(tmp_path, own_kamailio, "ivan", "dnd")
        await see(tmp_path, own_kamailio, "jane", "rpid:away")
        # Changes after the restart modify the publication (412 → fresh after a crash).
        await connection.set_presence(person("jane"), PbxPresence.MEETING, "")
        await see(tmp_path, own_kamailio, "jane", "rpid:meeting")
        # The dialog subscription is back: a call reaches the PBX → Teams input.
        phone.publication.etag = None  # the phone's own publication died with the server
        await phone.call("confirmed")
        await reader.wait_for(
            lambda e: isinstance(e, LineStateEvent) and e.state is LineState.ON_THE_PHONE
        )
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await phone.close()
        await reader.close()
        await connection.stop()


async def test_clean_restart_mid_test(own_kamailio: KamailioServer, tmp_path: Path) -> None:
    await check_recovery(own_kamailio, tmp_path, clean=True)


async def test_crash_mid_test(own_kamailio: KamailioServer, tmp_path: Path) -> None:
    await check_recovery(own_kamailio, tmp_path, clean=False)


async def test_crash_over_tcp(own_kamailio: KamailioServer, tmp_path: Path) -> None:
    await check_recovery(own_kamailio, tmp_path, clean=False, transport="tcp")


async def test_changes_during_an_outage_are_shown_when_the_server_returns(
    own_kamailio: KamailioServer, tmp_path: Path
) -> None:
    connection = await connect(own_kamailio)
    try:
        await connection.set_presence(person("kai"), PbxPresence.AWAY, "")
        own_kamailio.kill()
        await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED)
        await connection.set_presence(person("kai"), PbxPresence.DND, "")  # returns at once
        await connection.set_presence(person("lea"), PbxPresence.BUSY, "")
        own_kamailio.start()
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await see(tmp_path, own_kamailio, "kai", "dnd")
        await see(tmp_path, own_kamailio, "lea", "rpid:busy")
    finally:
        await connection.stop()


async def test_a_server_that_starts_late(sip_tools: None, tmp_path: Path) -> None:
    server = KamailioServer(tmp_path / "late", port=free_port())
    connection = SipConnection("late", options(server))
    await connection.start()
    try:
        await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED)
        await connection.set_presence(person("max"), PbxPresence.DND, "Focus time")
        await connection.watch([person("max")])
        server.start()
        await wait_until(lambda: connection.status().state is ConnectionState.CONNECTED)
        await see(tmp_path, server, "max", "Focus time")
        await wait_until(lambda: len(connection._dialogs) == 1)
    finally:
        await connection.stop()
        server.stop()


async def test_stop_withdraws_when_the_server_answers_again_after_a_missed_keepalive(
    own_kamailio: KamailioServer, tmp_path: Path
) -> None:
    # A long interval: after the missed keepalive nothing probes again before stop().
    connection = await connect(own_kamailio, keepalive_interval=5.0, keepalive_timeout=1.0)
    stopped = False
    try:
        await connection.set_presence(person("nia"), PbxPresence.DND, "")
        watcher = Watcher(tmp_path, own_kamailio.port, "nia", "dnd", "closed", timeout=40)
        await watcher.start()
        await watcher.received("dnd")
        own_kamailio.pause()
        try:
            await wait_until(lambda: connection.status().state is ConnectionState.DEGRADED,
                             within=30)
        finally:
            own_kamailio.resume()
        await connection.stop()  # the server answers again: the publication is withdrawn
        stopped = True
        run = await watcher.result()
        assert run.returncode == 0, (run.notify_bodies, run.output)
    finally:
        if not stopped:
            await connection.stop()


def recorded_probes(connection: SipConnection) -> list[bool]:
    """Each keep-alive probe's result from now on (whether the server answered)."""
    probes: list[bool] = []
    probe = connection._health.probe

    async def recorded() -> bool:
        answered = await probe()
        probes.append(answered)
        return answered

    connection._health.probe = recorded  # type: ignore[method-assign]
    return probes


async def test_a_restart_between_two_keepalives_is_noticed_and_everything_sent_again(
    own_kamailio: KamailioServer, tmp_path: Path
) -> None:
    connection = await connect(own_kamailio, keepalive_interval=3.0)
    probes = recorded_probes(connection)
    try:
        await connection.set_presence(person("ola"), PbxPresence.DND, "")
        await connection.set_presence(person("pia"), PbxPresence.AWAY, "")
        seen = len(probes)
        await wait_until(lambda: len(probes) > seen)
        # Right after a probe, and blocking the event loop meanwhile: no OPTIONS goes out
        # while the server is away, so only what it forgot can tell the restart.
        own_kamailio.kill()
        own_kamailio.start()
        await see(tmp_path, own_kamailio, "ola", "dnd")
        await see(tmp_path, own_kamailio, "pia", "rpid:away")
        assert all(probes)  # the keep-alive never saw the server away
        assert connection.status().state is ConnectionState.CONNECTED
    finally:
        await connection.stop()


async def test_with_nothing_published_a_quick_restart_is_noticed_by_the_line_watch(
    own_kamailio: KamailioServer,
) -> None:
    connection = await connect(own_kamailio, keepalive_interval=3.0)
    reader = EventReader(connection)
    probes = recorded_probes(connection)
    phone = None
    try:
        await connection.watch([person("quy")])
        seen = len(probes)
        await wait_until(lambda: len(probes) > seen)
        own_kamailio.kill()  # as above: between two probes, the loop blocked meanwhile
        own_kamailio.start()
        seen = len(probes)
        await wait_until(lambda: len(probes) > seen + 1, within=30)  # a probe, then a check
        phone = await Phone(own_kamailio, "quy").start()
        await phone.call("confirmed")
        await reader.wait_for(
            lambda e: isinstance(e, LineStateEvent) and e.state is LineState.ON_THE_PHONE)
        assert all(probes)
    finally:
        if phone is not None:
            await phone.close()
        await reader.close()
        await connection.stop()
