"""Record real digest exchanges with Kamailio (401/407 × MD5/SHA-256) as a test fixture.

Run once by hand: `.venv/bin/python -m tests.pbx.sip.record_digest`; the unit tests in
test_digest.py replay `fixtures/digest_exchanges.json` without Kamailio.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from m365pbx.core.presence import PbxPresence
from m365pbx.pbx.sip import (
    Credentials,
    DigestSession,
    Leg,
    SipRequest,
    SipResponse,
    UaConfig,
    UserAgent,
)
from m365pbx.pbx.sip.pidf import PIDF_TYPE, pidf_document
from tests.pbx.sip.kamailio import KamailioServer

FIXTURE = Path(__file__).parent / "fixtures" / "digest_exchanges.json"
VARIANTS = {
    "401-MD5": (),
    "407-MD5": ("PROXY_AUTH",),
    "401-SHA-256": ("AUTH_SHA256",),
    "407-SHA-256": ("PROXY_AUTH", "AUTH_SHA256"),
}
USER, PASSWORD = "carol", 'p:a\\ss"w ord!§'


async def record(name: str, defines: tuple[str, ...]) -> dict[str, object]:
    """One PUBLISH answered with a challenge, then accepted: both messages, as text."""
    with tempfile.TemporaryDirectory() as folder:
        server = KamailioServer(Path(folder), accounts={USER: PASSWORD}, defines=defines)
        server.start()
        try:
            ua = UserAgent(UaConfig(server=("127.0.0.1", server.port)))
            exchanges: list[tuple[SipRequest, SipResponse]] = []
            original = ua.layer.request

            async def recording(
                request: SipRequest,
                limit: float | None = None,
                key: tuple[str, str] | None = None,
            ) -> SipResponse:
                response = await original(request, limit, key)
                exchanges.append((request, response))
                return response

            ua.layer.request = recording  # type: ignore[method-assign]
            await ua.start()
            leg = Leg(f"sip:{USER}@127.0.0.1", "sip:dave@127.0.0.1", "sip:dave@127.0.0.1")
            body = pidf_document("sip:dave@127.0.0.1", PbxPresence.AWAY)
            await ua.send(
                leg,
                "PUBLISH",
                [("Event", "presence"), ("Expires", "60")],
                body,
                PIDF_TYPE,
                auth=DigestSession(Credentials(USER, PASSWORD)),
            )
            await ua.close()
        finally:
            server.stop()
    (first, challenge), (answer, accepted) = exchanges
    return {
        "variant": name,
        "username": USER,
        "password": PASSWORD,
        "messages": [
            first.to_bytes().decode(),
            challenge.to_bytes().decode(),
            answer.to_bytes().decode(),
            accepted.to_bytes().decode(),
        ],
    }


async def main() -> None:
    """Record every variant and write the fixture."""
    records = [await record(name, defines) for name, defines in VARIANTS.items()]
    FIXTURE.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
