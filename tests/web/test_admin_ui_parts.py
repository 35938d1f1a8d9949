"""The admin UI's pieces without a browser: lights from statuses, sessions and links."""

from __future__ import annotations

from datetime import timedelta

from m365pbx.core.status import PartState, PartStatus
from m365pbx.web.admin_ui.overview import groups, light
from m365pbx.web.admin_ui.sessions import LINK_LIFETIME, SessionBook, same_token
from m365sim.clock import VirtualClock


def test_lights_name_the_part_carry_the_aadsts_code_and_put_the_worst_first() -> None:
    statuses = [
        PartStatus("pbx/switchboard", "pbx_connection", PartState.OK),
        PartStatus("store", "store", PartState.OK),
        PartStatus("tenant/contoso/directory", "directory", PartState.DEGRADED, None, "slow"),
        PartStatus("tenant/contoso/service_account/svc@contoso.com", "service_account",
                   PartState.OK, counters={"people": 640}),
        PartStatus("tenant/contoso/sign_in/2", "sign_in", PartState.BAD_CREDENTIALS, None,
                   "graph: the client secret is wrong (AADSTS7000215)", "Paste the Value"),
    ]
    found = groups(statuses)
    assert [g.title for g in found] == ["Tenant contoso", "PBX connections", "m365pbx"]
    contoso = found[0]
    assert contoso.colour == "red"
    assert [(one.title, one.colour) for one in contoso.lights] == [
        ("App sign-in: 2", "red"), ("Directory sync", "amber"),
        ("Service account: svc@contoso.com", "green")]
    assert contoso.lights[0].aadsts == "AADSTS7000215"
    assert contoso.lights[0].fix == "Paste the Value"
    assert contoso.lights[2].people == 640
    assert light(statuses[0]).title == "PBX connection: switchboard"
    assert light(statuses[1]).title == "Database" and light(statuses[1]).people is None


async def test_sessions_expire_and_a_one_time_link_works_once_and_briefly() -> None:
    clock = VirtualClock()
    book = SessionBook(clock, lifetime=timedelta(hours=1))
    token = book.open("alice")
    session = book.find(token)
    assert session is not None and session.name == "alice"
    assert book.find("forged") is None and book.find(None) is None
    await clock.advance(3601)
    assert book.find(token) is None
    link = book.one_time_link("demo")
    assert book.use_link(link) == "demo"
    assert book.use_link(link) is None
    late = book.one_time_link("demo")
    await clock.advance(LINK_LIFETIME.total_seconds() + 1)
    assert book.use_link(late) is None
    closed = book.open("bob")
    book.close(closed)
    assert book.find(closed) is None


def test_csrf_tokens_compare_whole_and_never_empty() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd")
    assert not same_token("", "")
    assert not same_token(None, None)
    assert not same_token("abc", None)


async def test_expired_sessions_are_forgotten_at_the_next_sign_in() -> None:
    clock = VirtualClock()
    book = SessionBook(clock, lifetime=timedelta(minutes=5))
    for _ in range(50):
        book.open("alice")
    await clock.advance(301)
    kept = book.open("alice")
    assert book.open_sessions == 1 and book.find(kept) is not None
