"""The admin UI over plain HTTP (no browser): sign-in with the form's CSRF token, and forms
beyond the size limit refused before they are read whole."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from m365pbx.service.admin_signin import create_admin
from m365pbx.store import SecretBox, Store, generate_key, upgrade_database
from m365pbx.web.admin_ui import AdminUi, admin_ui_router
from m365pbx.web.admin_ui.forms import MAX_FORM
from m365sim.clock import VirtualClock

PASSWORD = "a long enough password"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    await upgrade_database(url)
    store = Store.open(url, SecretBox([generate_key()]))
    async with store.transaction() as tx:
        await create_admin(tx, "alice", PASSWORD, now=datetime.now(UTC), actor="test")
    app = FastAPI()
    app.include_router(admin_ui_router(AdminUi(store, VirtualClock(), list, list)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://admin.test") as client:
        client.store = store  # type: ignore[attr-defined]
        yield client
    await store.close()


async def csrf_of(http: httpx.AsyncClient, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', (await http.get(path)).text)
    assert found is not None
    return found[1]


async def test_sign_in_needs_the_form_token_and_then_opens_the_pages(
    http: httpx.AsyncClient,
) -> None:
    token = await csrf_of(http, "/admin/login")
    refused = await http.post("/admin/login", data={"name": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    signed_in = await http.post("/admin/login", data={"name": "alice", "password": PASSWORD,
                                                      "csrf": token})
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/admin")
    assert "HttpOnly" in signed_in.headers["set-cookie"]
    assert "SameSite=strict" in signed_in.headers["set-cookie"]
    overview = await http.get("/admin")
    assert overview.status_code == 200
    assert overview.headers["content-security-policy"].startswith("default-src 'self'")
    assert overview.headers["x-frame-options"] == "DENY"


async def test_a_form_beyond_the_limit_is_refused_with_413(http: httpx.AsyncClient) -> None:
    token = await csrf_of(http, "/admin/login")
    answer = await http.post("/admin/login", content=b"csrf=" + token.encode() + b"&name="
                             + b"a" * (MAX_FORM + 1),
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 413


async def test_a_name_that_is_no_admin_locks_like_one_so_the_lock_tells_nothing(
    http: httpx.AsyncClient,
) -> None:
    shown = []
    for name in ("alice", "mallory"):
        for attempt in range(6):
            token = await csrf_of(http, "/admin/login")
            answer = await http.post("/admin/login", data={
                "name": name, "password": f"guess {attempt}", "csrf": token})
            assert answer.status_code == 401
            error = re.search(r'class="error" role="alert">([^<]+)<', answer.text)
            assert error is not None
            shown.append((name, error[1]))
    alice, mallory = shown[:6], shown[6:]
    assert [text for _, text in alice] == [text for _, text in mallory]
    assert alice[3][1] == "wrong name or password" and "locked" in alice[4][1]


def test_unknown_names_are_forgotten_oldest_first() -> None:
    from m365pbx.service.admin_signin import UnknownNames

    names = UnknownNames(keep=2)
    now = datetime.now(UTC)
    for name in ("a", "b", "c"):
        names.failed(name, now)
    assert list(names._failures) == ["b", "c"]


async def test_a_long_name_is_cut_to_an_admin_name_s_length_in_the_audit_trail(
    http: httpx.AsyncClient,
) -> None:
    token = await csrf_of(http, "/admin/login")
    answer = await http.post("/admin/login", data={"name": "x" * 300, "password": "guess",
                                                   "csrf": token})
    assert answer.status_code == 401
    store: Store = http.store  # type: ignore[attr-defined]
    async with store.transaction() as tx:
        [event] = [e for e in await tx.audit.list_recent(object_type="admin")
                   if e.action == "admin.sign_in_failed"]
    assert event.actor == "x" * 100 and event.object_id == "x" * 100


async def test_on_one_node_there_is_no_cluster_page(http: httpx.AsyncClient) -> None:
    token = await csrf_of(http, "/admin/login")
    await http.post("/admin/login", data={"name": "alice", "password": PASSWORD,
                                          "csrf": token})
    assert 'href="/admin/cluster"' not in (await http.get("/admin")).text
    page = await http.get("/admin/cluster")
    assert page.status_code == 404 and "cluster.enabled is off" in page.text
