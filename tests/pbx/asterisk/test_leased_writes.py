"""An Asterisk connection on several nodes (issue 25), against a real Asterisk: only the node
holding the tenant writes device and presence states; a standby or stale node writes
nothing, and neither a node that lost the tenant nor one stopping cleanly clears the lamps
the holder keeps lit (before, every stop cleared the states its node had set)."""

from __future__ import annotations

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.base import ConnectionState, PbxUser
from m365pbx.service.pbx_leases import AsteriskSession
from tests.pbx.asterisk.conftest import PEOPLE
from tests.pbx.asterisk.helpers import connection_for, until
from tests.pbx.asterisk.server import AsteriskServer

ANNA = PbxUser(PEOPLE[0][0], {"extension": PEOPLE[0][0], "cn": PEOPLE[0][1]})
LAMP = f"DEVICE_STATE(Custom:{PEOPLE[0][0]}-teams)"


def presence_state(pbx: AsteriskServer) -> tuple[str, str]:
    """Anna's presence state in Asterisk and its message."""
    answer = pbx.ami("PresenceState", Provider=f"CustomPresence:{PEOPLE[0][0]}")[0]
    return str(answer["State"]), str(answer.get("PresenceMessage", ""))


async def test_only_the_holder_writes_and_nobody_clears_the_holder_s_lamps(
    asterisk: AsteriskServer,
) -> None:
    a, b = connection_for(asterisk), connection_for(asterisk)
    a_session, b_session = AsteriskSession(a), AsteriskSession(b)
    a_may_act = True
    for connection in (a, b):
        await connection.start()
    try:
        await until(lambda: a.status().state is ConnectionState.CONNECTED
                    and b.status().state is ConnectionState.CONNECTED)
        await a_session.take_over(lambda: a_may_act)
        await a.set_presence(ANNA, PbxPresence.DND, "by node-a")
        assert asterisk.getvar(LAMP) == "BUSY" and presence_state(asterisk) == ("dnd", "by node-a")

        # node-b stands by: what reaches it is not written.
        await b.set_presence(ANNA, PbxPresence.ONLINE, "")
        assert asterisk.getvar(LAMP) == "BUSY"

        # node-a's lease deadline passed (paused): it writes nothing more, and after the
        # keeper noticed, it hands over and stops without clearing.
        a_may_act = False
        await a.set_presence(ANNA, PbxPresence.AWAY, "stale node-a")
        assert presence_state(asterisk) == ("dnd", "by node-a")
        await a_session.hand_over(clean=False)
        await b_session.take_over(lambda: True)
        await b.set_presence(ANNA, PbxPresence.BUSY, "by node-b")
        assert presence_state(asterisk) == ("away", "by node-b")
        await a.stop()
        assert asterisk.getvar(LAMP) == "BUSY" and presence_state(asterisk) == ("away", "by node-b")

        # node-b stops cleanly (a rolling restart): the lamp stays lit for the next holder.
        await b_session.hand_over(clean=True)
        await b.stop()
        assert asterisk.getvar(LAMP) == "BUSY" and presence_state(asterisk) == ("away", "by node-b")
    finally:
        for connection in (a, b):
            await connection.stop()
        cleaner = connection_for(asterisk)  # the module's other tests expect no lamp lit
        await cleaner.start()
        await until(lambda: cleaner.status().state is ConnectionState.CONNECTED)
        await cleaner.set_presence(ANNA, PbxPresence.ONLINE, "")
        await cleaner.stop()
