"""SIP message parsing: tolerant of compact headers and folding, refusing garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from m365pbx.pbx.sip import parser as parser_module
from m365pbx.pbx.sip.fields import (
    FieldError,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_host_port,
    uri_user_host,
)
from m365pbx.pbx.sip.message import (
    CANONICAL_NAMES,
    Headers,
    SipRequest,
    SipResponse,
    response_for,
    split_list,
)
from m365pbx.pbx.sip.parser import (
    ParseLimits,
    SipParseError,
    StreamParser,
    parse_datagram,
)

NOTIFY = (
    "NOTIFY sip:m365pbx@127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:bob@example.com>;tag=srv1\r\n"
    "To: <sip:m365pbx@example.com>;tag=ours\r\n"
    "Call-ID: a84b4c76e66710@pc33\r\n"
    "CSeq: 2 NOTIFY\r\n"
    "Event: dialog\r\n"
    "Subscription-State: active;expires=3600\r\n"
    "Content-Type: application/dialog-info+xml\r\n"
    "Content-Length: 5\r\n"
    "\r\n"
    "hello"
)


def message(text: str) -> bytes:
    return text.encode()


def test_request_with_full_headers() -> None:
    parsed = parse_datagram(message(NOTIFY))
    assert isinstance(parsed, SipRequest)
    assert parsed.method == "NOTIFY"
    assert parsed.uri == "sip:m365pbx@127.0.0.1:5070"
    assert parsed.headers.get("call-id") == "a84b4c76e66710@pc33"
    assert parsed.headers.get("subscription-state") == "active;expires=3600"
    assert parsed.body == b"hello"


def test_compact_header_names_are_the_same_headers() -> None:
    compact = (
        "NOTIFY sip:m365pbx@127.0.0.1 SIP/2.0\r\n"
        "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        "f: <sip:bob@example.com>;tag=a\r\n"
        "t: <sip:us@example.com>;tag=b\r\n"
        "i: call-1\r\n"
        "CSeq: 1 NOTIFY\r\n"
        "o: presence\r\n"
        "c: application/pidf+xml\r\n"
        "l: 2\r\n"
        "\r\n"
        "ok"
    )
    parsed = parse_datagram(message(compact))
    assert parsed.headers.get("Call-ID") == "call-1"
    assert parsed.headers.get("From") == "<sip:bob@example.com>;tag=a"
    assert parsed.headers.get("Event") == "presence"
    assert parsed.headers.get("Content-Type") == "application/pidf+xml"
    assert parsed.headers.get("Content-Length") == "2"
    assert parsed.body == b"ok"


def test_folded_header_lines_are_joined() -> None:
    folded = NOTIFY.replace(
        "Subscription-State: active;expires=3600\r\n",
        "Subscription-State: active;\r\n   expires=3600\r\n",
    ).replace("Event: dialog\r\n", "Event:\r\n\tdialog\r\n")
    parsed = parse_datagram(message(folded))
    assert parsed.headers.get("subscription-state") == "active; expires=3600"
    assert parsed.headers.get("event") == "dialog"


def test_response_and_leading_crlf_keepalive() -> None:
    text = (
        "\r\n\r\nSIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 PUBLISH\r\n"
        "SIP-ETag: a.1.2\r\nExpires: 120\r\nContent-Length: 0\r\n\r\n"
    )
    parsed = parse_datagram(message(text))
    assert isinstance(parsed, SipResponse)
    assert (parsed.status, parsed.reason) == (200, "OK")
    assert parsed.headers.get("sip-etag") == "a.1.2"


def test_missing_content_length_over_udp_takes_the_rest() -> None:
    parsed = parse_datagram(message(NOTIFY.replace("Content-Length: 5\r\n", "")))
    assert parsed.body == b"hello"


def test_bytes_beyond_content_length_are_discarded_rfc3261_18_3() -> None:
    parsed = parse_datagram(message(NOTIFY.replace("Content-Length: 5", "Content-Length: 3")))
    assert parsed.body == b"hel"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("Content-Length: 5", "Content-Length: 50"), "content-length"),
        (("Content-Length: 5", "Content-Length: five"), "content-length"),
        (("Content-Length: 5", "Content-Length: -5"), "content-length"),
        (("Content-Length: 5\r\n", "Content-Length: 5\r\nl: 4\r\n"), "content-length"),
        (("NOTIFY sip:m365pbx@127.0.0.1:5070 SIP/2.0", "NOTIFY sip:x SIP/3.0"), "bad-start-line"),
        (("NOTIFY sip:m365pbx@127.0.0.1:5070 SIP/2.0", "NOT IFY sip:x SIP/2.0"), "bad-start-line"),
        (("NOTIFY sip:m365pbx@127.0.0.1:5070 SIP/2.0", "NOTIFY nocolon SIP/2.0"), "bad-start-line"),
        (("Max-Forwards: 70", "Max-Forwards 70"), "bad-header"),
        (("Max-Forwards: 70", "Max Forwards: 70"), "bad-header"),
        (("Call-ID: a84b4c76e66710@pc33\r\n", ""), "missing-header"),
        (("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK776asdhds\r\n", ""), "missing-header"),
        (("CSeq: 2 NOTIFY", "CSeq: 2 PUBLISH"), "bad-header"),
        (("CSeq: 2 NOTIFY", "CSeq: two NOTIFY"), "bad-header"),
        (("Via: SIP/2.0/UDP", "Via: HTTP/1.1/UDP"), "bad-header"),
        (("\r\n\r\nhello", "\r\nhello"), "truncated"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(change: tuple[str, str], reason: str) -> None:
    broken = NOTIFY.replace(*change)
    assert broken != NOTIFY
    with pytest.raises(SipParseError) as caught:
        parse_datagram(message(broken))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02garbage",
        b"hello world\r\n\r\n",
        b"SIP/2.0 99 Too Small\r\n\r\n",
        b"SIP/2.0 abc OK\r\n\r\n",
        NOTIFY.encode().replace(b"Event: dialog", b"Event: \xff\xfe"),
        NOTIFY.encode().replace(b"Event: dialog", b"Event: a\x00b"),
        b"\r\n NOTIFY sip:a@b SIP/2.0\r\n\r\n",
        b" folded-first: x\r\n\r\n",
    ],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_datagram(data)


def test_oversized_inputs_are_refused() -> None:
    limits = ParseLimits()
    with pytest.raises(SipParseError, match="oversized"):
        parse_datagram(message(NOTIFY) + b"x" * limits.max_message)
    with pytest.raises(SipParseError, match="oversized"):
        parse_datagram(message(NOTIFY.replace("Event: dialog", "Event: " + "d" * 5000)))
    many = "".join(f"X-H{i}: {i}\r\n" for i in range(limits.max_headers + 1))
    with pytest.raises(SipParseError, match="oversized"):
        parse_datagram(message(NOTIFY.replace("Event: dialog\r\n", "Event: dialog\r\n" + many)))
    folded = "Event: dialog" + "\r\n x" * 3000
    with pytest.raises(SipParseError, match="oversized"):
        parse_datagram(message(NOTIFY.replace("Event: dialog", folded)))
    small = ParseLimits(max_body=3)
    with pytest.raises(SipParseError, match="oversized"):
        parse_datagram(message(NOTIFY), small)


def test_serialisation_round_trip_sets_content_length() -> None:
    headers = Headers()
    for name, value in [
        ("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx"),
        ("From", "<sip:a@b>;tag=1"),
        ("To", "<sip:c@d>"),
        ("Call-ID", "cid"),
        ("CSeq", "7 PUBLISH"),
        ("Content-Length", "999"),
    ]:
        headers.add(name, value)
    request = SipRequest("PUBLISH", "sip:c@d", headers, "é body".encode())
    parsed = parse_datagram(request.to_bytes())
    assert isinstance(parsed, SipRequest)
    assert parsed.body == "é body".encode()
    assert parsed.headers.get_all("content-length") == [str(len("é body".encode()))]
    assert parsed.headers.get("cseq") == "7 PUBLISH"


def test_stream_parser_frames_split_and_joined_messages() -> None:
    data = b"\r\n" + message(NOTIFY) + b"\r\n\r\n" + message(NOTIFY.replace("2 NOTIFY", "3 NOTIFY"))
    parser = StreamParser()
    got = []
    for index in range(len(data)):
        got += parser.feed(data[index : index + 1])
    assert [m.headers.get("cseq") for m in got] == ["2 NOTIFY", "3 NOTIFY"]
    assert all(m.body == b"hello" for m in got)
    assert StreamParser().feed(data) == got


def test_stream_parser_needs_content_length_and_refuses_garbage() -> None:
    with pytest.raises(SipParseError, match="content-length"):
        StreamParser().feed(message(NOTIFY.replace("Content-Length: 5\r\n", "")))
    with pytest.raises(SipParseError):
        StreamParser().feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(SipParseError, match="oversized"):
        StreamParser().feed(b"NOTIFY sip:a@b SIP/2.0\r\nX: " + b"y" * 20_000)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_a_parse_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_datagram(data)
    with contextlib.suppress(SipParseError):
        StreamParser().feed(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(NOTIFY) - 1), st.binary(min_size=1, max_size=4))
def test_mutated_messages_never_raise_anything_but_a_parse_error(
    position: int, noise: bytes
) -> None:
    data = message(NOTIFY)
    with contextlib.suppress(SipParseError):
        parse_datagram(data[:position] + noise + data[position + len(noise) :])


def test_header_fields() -> None:
    address = parse_name_addr('"Bob, B." <sip:bob@example.com;transport=tcp>;tag=x1;foo')
    assert address.uri == "sip:bob@example.com;transport=tcp"
    assert address.tag == "x1"
    assert address.display == "Bob, B."
    bare = parse_name_addr("sip:bob@example.com;tag=7")
    assert (bare.uri, bare.tag) == ("sip:bob@example.com", "7")
    via = parse_via("SIP/2.0/tcp [::1]:5061;branch=z9hG4bKq;rport")
    assert (via.transport, via.host, via.port, via.branch) == ("TCP", "::1", 5061, "z9hG4bKq")
    assert parse_cseq("12 SUBSCRIBE") == (12, "SUBSCRIBE")
    assert split_host_port("example.com") == ("example.com", None)
    assert uri_user_host("sip:bob@example.com;x=y") == ("bob", "example.com")
    assert split_list('<sip:a@b;x="1,2">, "c, d" <sip:e@f>') == [
        '<sip:a@b;x="1,2">',
        '"c, d" <sip:e@f>',
    ]
    for bad in ("<sip:a@b", "no uri", "<>"):
        with pytest.raises(FieldError):
            parse_name_addr(bad)
    for bad in ("1", "x PUBLISH", "99999999999 PUBLISH", "1 PUB LISH"):
        with pytest.raises(FieldError):
            parse_cseq(bad)
    with pytest.raises(FieldError):
        split_host_port("host:99999")


def test_headers_lookup_set_remove_and_response_copies() -> None:
    parsed = parse_datagram(message(NOTIFY))
    assert isinstance(parsed, SipRequest)
    response = response_for(parsed, 200)
    assert response.headers.get("via") == parsed.headers.get("via")
    assert response.headers.get("cseq") == "2 NOTIFY"
    assert response.headers.get("event") is None
    headers = Headers()
    headers.add("Contact", "<sip:a@b>, <sip:c@d>")
    headers.add("m", "<sip:e@f>")
    assert headers.get_all("contact") == ["<sip:a@b>", "<sip:c@d>", "<sip:e@f>"]
    headers.set("Contact", "<sip:z@z>")
    assert headers.get_all("m") == ["<sip:z@z>"]
    headers.remove("contact")
    assert "contact" not in headers


def test_lookups_see_every_change_after_the_first_lookup() -> None:
    # Lookups go through an index built at the first one; every change must drop it.
    headers = Headers()
    headers.add("Event", "dialog")
    assert headers.get("o") == "dialog"
    headers.add("Expires", "60")
    assert headers.get("expires") == "60"
    headers.extend_last("(folded)")
    assert headers.get("Expires") == "60 (folded)"
    headers.set("Event", "presence")
    assert headers.get("event") == "presence"
    headers.remove("o")
    assert headers.get("event") is None
    parsed = parse_datagram(message(NOTIFY.replace("Event: dialog", "Event: dialog\r\n  ;id=7")))
    assert parsed.headers.get("event") == "dialog ;id=7"


def test_header_names_from_peers_do_not_grow_memory_without_bound() -> None:
    for number in range(5_000):
        parse_datagram(message(NOTIFY.replace("Event: dialog", f"Event: dialog\r\nX-N{number}: 1")))
    assert len(CANONICAL_NAMES) <= 1_000
    assert len(parser_module._TOKEN_NAMES) <= 1_000
