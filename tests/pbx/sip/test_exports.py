"""The public surface of m365pbx.pbx.sip is what __all__ says (guarded like httpx does)."""

from __future__ import annotations

import m365pbx.pbx.sip as sip
from m365pbx.pbx.base import PbxConnection


def test_every_exported_name_exists_and_nothing_private_leaks() -> None:
    assert sorted(sip.__all__) == sip.__all__
    for name in sip.__all__:
        assert hasattr(sip, name), name
    public = {name for name in vars(sip) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(sip, name)).__name__ == "module"}
    assert public - modules == set(sip.__all__)


def test_sip_connection_satisfies_the_protocol() -> None:
    options = sip.SipOptions(server=("127.0.0.1", 5060), addressing=sip.Addressing("x"))
    assert isinstance(sip.SipConnection("c", options), PbxConnection)
