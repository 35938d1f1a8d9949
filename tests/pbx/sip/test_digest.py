"""Digest authentication: RFC vectors, exchanges recorded with Kamailio, and retry rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m365pbx.pbx.sip.digest import (
    Credentials,
    DigestError,
    DigestSession,
    authorization,
    best_challenge,
    digest_response,
    parse_challenge,
)
from m365pbx.pbx.sip.message import SipRequest, SipResponse
from m365pbx.pbx.sip.parser import parse_datagram
from m365pbx.pbx.sip.useragent import BadCredentials, Leg, UaConfig, UserAgent
from tests.pbx.sip.fakeserver import answer, start_fake_server

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "digest_exchanges.json").read_text())


def auth_params(value: str) -> dict[str, str]:
    """Independent reading of an Authorization header (not the code under test)."""
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    params = {}
    for part in rest.split(", "):
        name, _, raw = part.partition("=")
        params[name] = (
            raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw[:1] == '"' else raw
        )
    return params


def test_rfc_7616_sha256_and_md5_vectors() -> None:
    credentials = Credentials("Mufasa", "Circle of Life")
    base = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={}, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    sha = parse_challenge(base.format("SHA-256"))
    md5 = parse_challenge(base.format("MD5"))
    assert digest_response(sha, credentials, "GET", "/dir/index.html", cnonce=cnonce)[0] == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    assert digest_response(md5, credentials, "GET", "/dir/index.html", cnonce=cnonce)[0] == (
        "8ca523f5e9506fed4657c9700eebdbec"
    )


def test_rfc_2617_vector_and_no_qop() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    credentials = Credentials("Mufasa", "Circle Of Life")
    response, qop, _ = digest_response(
        challenge, credentials, "GET", "/dir/index.html", cnonce="0a4f113b"
    )
    assert (response, qop) == ("6629fae49393a05397450978507c4ef1", "auth")
    legacy = parse_challenge('Digest realm="r", nonce="n"')
    value = authorization(legacy, credentials, "PUBLISH", "sip:a@b")
    assert "qop" not in value and "nc=" not in value


@pytest.mark.parametrize("record", RECORDED, ids=[r["variant"] for r in RECORDED])
def test_recorded_kamailio_exchange_is_reproduced(record: dict[str, object]) -> None:
    messages = [parse_datagram(str(text).encode()) for text in record["messages"]]  # type: ignore[attr-defined]
    _, challenge, answered, accepted = messages
    assert isinstance(challenge, SipResponse) and isinstance(answered, SipRequest)
    assert isinstance(accepted, SipResponse) and accepted.status == 200
    proxy = challenge.status == 407
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    parsed = best_challenge(challenge.headers.get_all(name), proxy=proxy)
    sent = answered.headers.get(parsed.reply_header)
    assert (
        sent is not None
        and answered.headers.get("authorization" if proxy else "proxy-authorization") is None
    )
    params = auth_params(sent)
    credentials = Credentials(str(record["username"]), str(record["password"]))
    expected = authorization(
        parsed,
        credentials,
        answered.method,
        answered.uri,
        cnonce=params["cnonce"],
        nc=int(params["nc"], 16),
    )
    assert auth_params(expected)["response"] == params["response"]
    assert params["username"] == record["username"]
    assert params["algorithm"] == parsed.algorithm


def test_challenge_parsing_and_choice() -> None:
    md5 = 'Digest realm="r", nonce="n1", qop="auth"'
    sha = 'Digest realm="r", nonce="n2", qop="auth", algorithm=SHA-256, stale=TRUE'
    best = best_challenge([md5, sha])
    assert (best.algorithm, best.nonce, best.stale) == ("SHA-256", "n2", True)
    assert best_challenge([md5, 'Digest realm="r", nonce="x", algorithm=SHA-512-256']).nonce == "n1"
    for bad in (
        'Basic realm="r"',
        'Digest realm="r"',
        'Digest realm="r", nonce="n", algorithm=SHA-1',
        'Digest realm="r", nonce="n", qop="auth-conf"',
        'Digest realm="r, nonce="n',
    ):
        with pytest.raises(DigestError):
            parse_challenge(bad)
    with pytest.raises(DigestError):
        best_challenge([])


def test_quotes_and_backslashes_in_username_are_escaped() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    credentials = Credentials('we"ird\\user', 'Zq:a\\ss"w ord!§')
    value = authorization(challenge, credentials, "PUBLISH", "sip:a@b", cnonce="c")
    assert 'username="we\\"ird\\\\user"' in value
    assert auth_params(value)["username"] == 'we"ird\\user'
    assert "Zq:a" not in value and "ord!" not in value
    assert "password=<hidden>" in repr(credentials)


def test_sess_and_auth_int_variants() -> None:
    credentials = Credentials("u", "p")
    sess = parse_challenge('Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess')
    plain = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    a = digest_response(sess, credentials, "PUBLISH", "sip:x@y", cnonce="c")[0]
    b = digest_response(plain, credentials, "PUBLISH", "sip:x@y", cnonce="c")[0]
    assert a != b
    integrity = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    one = digest_response(integrity, credentials, "PUBLISH", "sip:x@y", body=b"1", cnonce="c")
    two = digest_response(integrity, credentials, "PUBLISH", "sip:x@y", body=b"2", cnonce="c")
    assert one[1] == "auth-int" and one[0] != two[0]


def test_session_counts_nonce_uses() -> None:
    session = DigestSession(Credentials("u", "p"))
    assert session.header("PUBLISH", "sip:x@y") is None
    session.accept(parse_challenge('Digest realm="r", nonce="n", qop="auth"', proxy=True))
    first = session.header("PUBLISH", "sip:x@y")
    second = session.header("PUBLISH", "sip:x@y")
    assert first is not None and second is not None
    assert first[0] == "Proxy-Authorization"
    assert "nc=00000001" in first[1] and "nc=00000002" in second[1]


async def _agent(port: int) -> UserAgent:
    ua = UserAgent(UaConfig(server=("127.0.0.1", port)))
    await ua.start()
    return ua


@pytest.mark.parametrize("record", RECORDED, ids=[r["variant"] for r in RECORDED])
async def test_user_agent_answers_a_replayed_challenge(record: dict[str, object]) -> None:
    recorded = parse_datagram(str(record["messages"][1]).encode())  # type: ignore[index]
    assert isinstance(recorded, SipResponse)
    name = "Proxy-Authenticate" if recorded.status == 407 else "WWW-Authenticate"
    challenge_value = recorded.headers.get(name) or ""

    def respond(request: SipRequest) -> SipResponse:
        if request.headers.get("authorization") or request.headers.get("proxy-authorization"):
            return answer(request, 200)
        return answer(
            request, recorded.status, recorded.reason, **{name.replace("-", "_"): challenge_value}
        )

    server = await start_fake_server(respond)
    ua = await _agent(server.address[1])
    try:
        credentials = Credentials(str(record["username"]), str(record["password"]))
        leg = Leg("sip:carol@127.0.0.1", "sip:dave@127.0.0.1", "sip:dave@127.0.0.1")
        response = await ua.send(
            leg,
            "PUBLISH",
            [("Event", "presence")],
            b"x",
            "text/plain",
            auth=DigestSession(credentials),
        )
        assert response.status == 200
        first, second = server.requests
        header = "Proxy-Authorization" if recorded.status == 407 else "Authorization"
        params = auth_params(second.headers.get(header) or "")
        parsed = parse_challenge(challenge_value, proxy=recorded.status == 407)
        expected = authorization(
            parsed, credentials, "PUBLISH", "sip:dave@127.0.0.1", cnonce=params["cnonce"], nc=1
        )
        assert auth_params(expected)["response"] == params["response"]
        assert (
            int(second.headers.get("cseq").split()[0])
            == int(first.headers.get("cseq").split()[0]) + 1
        )  # type: ignore[union-attr]
    finally:
        await ua.close()
        server.close()


async def test_the_same_challenge_again_means_bad_credentials() -> None:
    challenge = 'Digest realm="r", nonce="fixed", qop="auth"'
    server = await start_fake_server(lambda r: answer(r, 401, WWW_Authenticate=challenge))
    ua = await _agent(server.address[1])
    try:
        leg = Leg("sip:a@r", "sip:b@r", "sip:b@r")
        with pytest.raises(BadCredentials, match="refused") as caught:
            await ua.send(leg, "PUBLISH", auth=DigestSession(Credentials("a", "secret-pw")))
        assert "secret-pw" not in str(caught.value)
        assert len(server.requests) == 2
        with pytest.raises(BadCredentials, match="asks for credentials"):
            await ua.send(leg, "PUBLISH")
    finally:
        await ua.close()
        server.close()


async def test_a_stale_nonce_is_answered_once_more() -> None:
    count = 0

    def respond(request: SipRequest) -> SipResponse:
        nonlocal count
        count += 1
        if count == 1:
            return answer(request, 401, WWW_Authenticate='Digest realm="r", nonce="n1", qop="auth"')
        if count == 2:
            return answer(
                request,
                401,
                WWW_Authenticate='Digest realm="r", nonce="n2", qop="auth", stale=true',
            )
        return answer(request, 200)

    server = await start_fake_server(respond)
    ua = await _agent(server.address[1])
    try:
        leg = Leg("sip:a@r", "sip:b@r", "sip:b@r")
        session = DigestSession(Credentials("a", "p"))
        response = await ua.send(leg, "PUBLISH", auth=session)
        assert response.status == 200 and count == 3
        # The next request answers the cached nonce at once (no new 401 round trip).
        await ua.send(leg, "PUBLISH", auth=session)
        assert count == 4
        assert 'nonce="n2"' in (server.requests[-1].headers.get("authorization") or "")
    finally:
        await ua.close()
        server.close()


async def test_an_unanswerable_challenge_is_bad_credentials() -> None:
    server = await start_fake_server(lambda r: answer(r, 401, WWW_Authenticate='Basic realm="x"'))
    ua = await _agent(server.address[1])
    try:
        with pytest.raises(BadCredentials, match="cannot answer"):
            await ua.send(
                Leg("sip:a@r", "sip:b@r", "sip:b@r"),
                "PUBLISH",
                auth=DigestSession(Credentials("a", "p")),
            )
    finally:
        await ua.close()
        server.close()
