"""The validation handshake refuses the answers Graph would refuse (a peer that misbehaves)."""

from __future__ import annotations

import httpx
import pytest

from m365pbx.check.public_url import handshake


def _peer(answer: str) -> httpx.AsyncClient:
    def reply(request: httpx.Request) -> httpx.Response:
        token = request.url.params["validationToken"]
        if answer == "json":
            return httpx.Response(200, json=token)
        if answer == "other":
            return httpx.Response(200, text="hello", headers={"content-type": "text/plain"})
        if answer == "accepted":
            return httpx.Response(202)
        return httpx.Response(200, text=token, headers={"content-type": "text/plain"})

    return httpx.AsyncClient(transport=httpx.MockTransport(reply))


@pytest.mark.parametrize(("answer", "said"), [
    ("echo", "echoed the validation token as text/plain"),
    ("json", "echoed the token as application/json, not text/plain"),
    ("other", "answered 200 but not with the token it was sent"),
    ("accepted", "answered HTTP 202 instead of 200"),
])
async def test_only_the_token_echoed_as_text_plain_passes(answer: str, said: str) -> None:
    async with _peer(answer) as http:
        passed, words = await handshake("https://pbx.example.com/graph/notifications",
                                        http=http)
    assert (passed, words) == (answer == "echo", said)
