"""How many presence changes per second the simulator delivers as notifications, on one core.

A delegated presence subscription (650 users) points at a local receiver; N presence
changes are published on the simulator's bus with zero latency and the clock runs until the
receiver has counted N notifications. Measured twice per kind of notification (basic, and
rich with encryption and validation tokens): to an in-process receiver through
httpx.ASGITransport, and to a real receiver on 127.0.0.1 (uvicorn, plain HTTP) in the
same process, so receiver and simulator share the one core.

Batches hold up to 100 notifications (the simulator's default); two more measurements send
one POST per notification to the loopback receiver, the worst case, with one POST in flight
(the default) and with eight.

Prints one JSON line: {"bench": "sim_delivery", "changes": N, "asgi_per_second": ...,
"loopback_per_second": ..., "loopback_unbatched_per_second": ...,
"loopback_unbatched_8_in_flight_per_second": ..., "asgi_rich_per_second": ...,
"loopback_rich_per_second": ...}.
Run: .venv/bin/python bench/bench_sim_delivery.py [N]
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import sys
import time
import uuid
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from starlette.types import Receive, Scope, Send

from m365sim.app import create_app
from m365sim.events import ResourceChange
from m365sim.scenario import load_scenario
from m365sim.simulator import SimSettings, Simulator

TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
WATCHED = 650

class CountingReceiver:
    """A minimal webhook: echoes validation tokens, parses and counts notifications."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.expected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode()
        if query.startswith("validationToken="):
            token = httpx.QueryParams(query)["validationToken"].encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": token})
            return
        self.count += len(json.loads(body)["value"])
        if self.count >= self.expected:
            self.done.set()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def certificate() -> str:
    """A subscriber's self-signed encryption certificate, base64 DER."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def make_sim() -> tuple[Simulator, list[str]]:
    """A wall-clock simulator with one tenant, the service account and 650 watched users."""
    sim = Simulator(settings=SimSettings(base_url="https://sim.bench",
                                         notification_latency_s=(0.0, 0.0)))
    users: list[dict[str, Any]] = [{"upn": "svc@contoso.com", "password": "x"}]
    users += [{"upn": f"u{i}@contoso.com", "id": str(uuid.uuid4())} for i in range(WATCHED)]
    load_scenario(sim, {"tenants": [{
        "id": TENANT, "name": "Contoso", "domains": ["contoso.com"],
        "apps": [{"app_id": APP, "name": "bench", "delegated": ["Presence.Read.All"]}],
        "users": users,
    }]})
    sim.subscriptions.settings.allow_http_loopback = True
    sim.subscriptions.settings.log_size = 1000
    return sim, [u["id"] for u in users[1:]]


async def measure(url: str, transport: httpx.AsyncBaseTransport | None,
                  receiver: CountingReceiver, changes: int, rich: bool,
                  max_batch: int = 100, max_in_flight: int = 1) -> float:
    """Changes per second from the first publish to the last notification received."""
    sim, ids = make_sim()
    sim.subscriptions.transport = transport
    sim.subscriptions.settings.max_batch = max_batch
    sim.subscriptions.settings.max_in_flight = max_in_flight
    tenant = sim.directory.find_tenant(TENANT)
    assert tenant is not None
    svc = tenant.find_user("svc@contoso.com")
    assert svc is not None
    token = sim.issuer.access_token(tenant_id=TENANT, app_id=APP, now=sim.clock.now(),
                                    lifetime=dt.timedelta(hours=1), user_id=svc.id,
                                    scopes=["Presence.Read.All"])
    expires = sim.clock.now() + dt.timedelta(minutes=59)
    body: dict[str, Any] = {
        "changeType": "updated", "notificationUrl": url, "clientState": "bench",
        "resource": "/communications/presences?$filter=id in ({})".format(
            ",".join(f"'{i}'" for i in ids)),
        "expirationDateTime": expires.isoformat(),
    }
    if rich:
        body.update(includeResourceData=True, encryptionCertificate=certificate(),
                    encryptionCertificateId="bench")
    runner = asyncio.create_task(sim.run())
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(sim)),
                                     base_url="https://sim.bench") as graph:
            created = await graph.post("/v1.0/subscriptions", json=body,
                                       headers={"Authorization": f"Bearer {token}"})
            assert created.status_code == 201, created.text
        receiver.count, receiver.expected = 0, changes
        receiver.done.clear()
        batch = [ResourceChange(
            tenant_id=TENANT, resource=f"communications/presences/{user}",
            change_type="updated", resource_id=user, odata_type="#microsoft.graph.presence",
            odata_id=f"users/{user}/presence",
            resource_data={"@odata.type": "#microsoft.graph.presence",
                           "@odata.id": f"users/{user}/presence", "id": user,
                           "availability": "Busy", "activity": "InACall"},
        ) for user in ids]
        started = time.perf_counter()
        for index in range(changes):
            sim.bus.publish(batch[index % len(batch)])
            if index % 200 == 199:
                await asyncio.sleep(0)
        await asyncio.wait_for(receiver.done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return changes / elapsed


async def main(changes: int) -> dict[str, Any]:
    """Run the four measurements."""
    receiver = CountingReceiver()
    result: dict[str, Any] = {"bench": "sim_delivery", "changes": changes}
    for rich in (False, True):
        suffix = "_rich" if rich else ""
        result[f"asgi{suffix}_per_second"] = round(await measure(
            "https://receiver.bench/hook", httpx.ASGITransport(app=receiver), receiver,
            changes, rich))
        config = uvicorn.Config(receiver, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/hook"
        try:
            result[f"loopback{suffix}_per_second"] = round(await measure(
                url, None, receiver, changes, rich))
            if not rich:
                # The worst case: one POST per notification, one or eight in flight.
                result["loopback_unbatched_per_second"] = round(await measure(
                    url, None, receiver, changes // 4, rich, max_batch=1))
                result["loopback_unbatched_8_in_flight_per_second"] = round(await measure(
                    url, None, receiver, changes // 4, rich, max_batch=1, max_in_flight=8))
        finally:
            server.should_exit = True
            await serving
    return result


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(json.dumps(asyncio.run(main(count))))
