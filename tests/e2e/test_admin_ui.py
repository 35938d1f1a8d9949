"""The admin UI in a real browser against m365pbx and the simulator (issue 21, §2 and §4):
sign-in, lockout, every route behind sign-in, CSRF, escaping, the lights, the audit trail.

Screenshots of each page go to the test's tmp folder (screenshots/*.png).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
from fastapi.routing import APIRoute
from playwright.async_api import Page, expect
from typer.testing import CliRunner, Result

from m365pbx.app import Service
from m365pbx.cli.app import _register, app
from m365pbx.web.admin_ui import admin_ui_router
from m365sim.clock import VirtualClock
from m365sim.model import Tenant
from m365sim.server import RunningServer
from m365sim.simulator import Simulator
from tests.e2e.browser import chromium
from tests.e2e.harness import (
    eventually,
    free_port,
    in_teams,
    pbx_users,
    running,
    settings_for,
    switchboard,
)
from tests.sim.conftest import APP_ID, APP_SECRET

PASSWORD = "correct horse battery staple"
EVIL = 'Ben <script>document.title="pwned"</script> Weber'
# Routes anybody may reach: the sign-in page, the one-time link, the stylesheet and script.
OPEN = {"/admin/login", "/admin/link/{token}", "/admin/static/{name}"}


async def cli(*args: str, stdin: str | None = None) -> Result:
    """The m365pbx CLI as an admin runs it (in a thread: it runs its own event loop)."""
    _register()
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), input=stdin)


async def create_admin(config: Path, name: str = "alice") -> None:
    """`m365pbx admin create` with the password on stdin."""
    result = await cli("admin", "create", name, "--password-stdin", "--config", str(config),
                       stdin=PASSWORD + "\n")
    assert result.exit_code == 0, result.output


def base(service: Service) -> str:
    """The service's own address."""
    return f"http://127.0.0.1:{service.settings.listen.port}"


async def sign_in(page: Page, service: Service, name: str = "alice",
                  password: str = PASSWORD) -> None:
    """Fill the sign-in form."""
    await page.goto(base(service) + "/admin")
    await expect(page).to_have_url(re.compile(r"/admin/login$"))
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


async def test_sign_in_pages_api_keys_csrf_escaping_and_the_audit_trail(
    sim_server: RunningServer, sim: Simulator, tenant: Tenant, clock: VirtualClock,
    tmp_path: Path,
) -> None:
    shots = tmp_path / "screenshots"
    sim.settings.extra["notification_allow_http_loopback"] = True  # our public URL is http
    sim.subscriptions.settings.allow_http_loopback = True
    ben = tenant.users[tenant.users_by_upn["ben@contoso.com"]]
    ben.display_name = EVIL
    tenant.touch_user(ben)
    # With a public URL: the service account carries a presence subscription.
    settings = settings_for(sim_server, tmp_path, webhook_port=free_port(),
                            admin={"enabled": True})
    config = tmp_path / "m365pbx.yaml"
    await create_admin(config)
    async with running(settings, clock) as service, chromium() as browser:
        switchboard(service).replace_users(pbx_users(("anna", "Anna Schmidt"), ("ben", EVIL)))
        await eventually(lambda: len(service.hub.people()) == 2, clock)
        account = "tenant/contoso/subscription/svc-presence@contoso.com"

        def subscribed() -> bool:
            part = service.status.get(account)
            return part is not None and part.state.value == "ok"

        await eventually(subscribed, clock)

        # Without a session every UI route (GET or POST) leads to the sign-in page.
        assert service.admin_ui is not None
        routes = [(method, route.path) for route in admin_ui_router(service.admin_ui).routes
                  if isinstance(route, APIRoute) for method in route.methods or ()]
        async with httpx.AsyncClient(base_url=base(service), timeout=60) as http:
            for method, path in routes:
                if path in OPEN:
                    continue
                answer = await http.request(method, re.sub(r"\{\w+\}", "1", path))
                assert (answer.status_code, answer.headers.get("location")) == (
                    303, "/admin/login"), (method, path)
            assert any(path == "/admin/api-keys" for _, path in routes)

        page = await browser.new_page()
        await page.goto(base(service) + "/admin/login")
        await page.screenshot(path=shots / "login.png", full_page=True)
        # Nor does the live view's socket open without a session.
        opened = await page.evaluate("""() => new Promise(done => {
            const socket = new WebSocket(`ws://${location.host}/admin/live/changes`);
            socket.onopen = () => done("open");
            socket.onclose = () => done("closed");
        })""")
        assert opened == "closed"
        await sign_in(page, service)
        await expect(page).to_have_url(re.compile(r"/admin$"))
        cookie = next(c for c in await page.context.cookies() if c["name"] == "m365pbx_admin")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert not cookie["secure"]  # http://127.0.0.1 here; Secure when public_url is https
        pbx = page.locator("article[data-part='pbx/switchboard']")
        await expect(pbx).to_contain_text("PBX connection: switchboard")
        await expect(pbx).to_have_class(re.compile(r"\bgreen\b"))
        carried = page.locator(
            "article[data-part='tenant/contoso/service_account/svc-presence@contoso.com']")
        await expect(carried).to_contain_text("2 of 650 people")
        await expect(carried.locator("meter")).to_have_attribute("value", "2")
        await expect(page.locator(f"article[data-part='{account}']")).to_have_class(
            re.compile(r"\bgreen\b"))
        await page.screenshot(path=shots / "overview.png", full_page=True)

        # A display name with a script is shown as text and never runs.
        await page.goto(base(service) + "/admin/people?q=ben")
        await expect(page.locator("tbody td").first).to_have_text(EVIL)
        assert await page.title() != "pwned"
        await page.screenshot(path=shots / "people.png", full_page=True)
        # One person: both sides and why (the connection's mapping, `mapping explain`).
        await page.click("tbody a")
        await expect(page.locator("h1")).to_have_text(EVIL)
        await expect(page.locator("p.explain")).to_contain_text(
            "→ PBX online, because")
        await expect(page.locator("ul.explain li")).to_have_count(2)
        await page.screenshot(path=shots / "person.png", full_page=True)

        # The live view: a change in Teams shows up as it happens.
        await page.goto(base(service) + "/admin/live")
        await expect(page.locator("#live-state")).to_have_text("connected")
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        row = page.locator("#live tbody tr", has_text="Anna Schmidt")
        for _ in range(100):
            if await row.filter(has_text="DoNotDisturb").count():
                break
            await clock.advance(0.5)
            await asyncio.sleep(0.05)
        await expect(row.filter(has_text="DoNotDisturb").first).to_contain_text("dnd")
        await page.screenshot(path=shots / "live.png", full_page=True)

        # API keys: create one (shown once), then revoke it.
        await page.goto(base(service) + "/admin/api-keys")
        await page.fill("input[name=name]", "reception")
        await page.check("input[name=scope][value=write]")
        await page.click("form.inline button[type=submit]")
        key = (await page.locator("code.key").inner_text()).strip()
        assert key.startswith("m365pbx_")
        await page.screenshot(path=shots / "api_keys.png", full_page=True)
        await page.click("tr:has-text('reception') button.danger")
        await expect(page.locator("tr:has-text('reception') button.danger")).to_have_count(0)

        # A POST without the CSRF token is refused, even with the session cookie.
        forged = await page.request.post(base(service) + "/admin/api-keys",
                                         form={"name": "forged", "scope": "read"},
                                         max_redirects=0)
        assert forged.status == 403
        async with service.store.transaction() as tx:
            assert [c.name for c in await tx.api_clients.list_all()] == ["reception"]

        await page.goto(base(service) + "/admin/audit")
        trail = page.locator("table.audit tbody")
        for action in ("admin.create", "admin.sign_in", "api_client.create",
                       "api_client.revoke", "configuration.applied"):
            await expect(trail).to_contain_text(action)
        assert key not in await trail.inner_text()  # secrets never in it
        await page.screenshot(path=shots / "audit.png", full_page=True)

        await page.click("header button[type=submit]")  # sign out
        await expect(page).to_have_url(re.compile(r"/admin/login$"))
        await page.goto(base(service) + "/admin/audit")
        await expect(page).to_have_url(re.compile(r"/admin/login$"))

    # The same trail in the CLI, secrets never in it.
    result = await cli("audit", "--format", "json", "--config", str(config))
    assert result.exit_code == 0, result.output
    events = json.loads(result.output)
    actions = [e["action"] for e in events]
    assert {"admin.create", "admin.sign_in", "api_client.create", "api_client.revoke",
            "configuration.applied"} <= set(actions)
    assert next(e for e in events if e["action"] == "api_client.create")["actor"] == (
        "admin alice")
    assert key not in result.output and PASSWORD not in result.output
    text = await cli("audit", "--config", str(config))
    assert "admin.sign_in  admin alice" in text.output


async def test_five_wrong_passwords_lock_the_admin_for_15_minutes(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        page = await browser.new_page()
        for attempt in range(4):
            await sign_in(page, service, password=f"wrong guess {attempt}")
            await expect(page.locator(".error")).to_have_text("wrong name or password")
        await sign_in(page, service, password="wrong guess 5")
        await expect(page.locator(".error")).to_contain_text("locked for 15 minutes")
        # Locked: the right password does not help now, and the page says why.
        await sign_in(page, service)
        await expect(page.locator(".error")).to_contain_text("locked")
        await page.screenshot(path=tmp_path / "screenshots" / "locked.png", full_page=True)
        async with service.store.transaction() as tx:
            trail = await tx.audit.list_recent(object_type="admin", object_id="alice")
        failed = [e for e in trail if e.action == "admin.sign_in_failed"]
        assert len(failed) == 6 and "locked" in failed[0].details["reason"]
        assert all(PASSWORD not in str(e.details) for e in trail)

        await clock.advance(15 * 60 + 1)
        await sign_in(page, service)
        await expect(page).to_have_url(re.compile(r"/admin$"))


async def test_a_wrong_app_secret_is_a_red_light_with_its_aadsts_code_and_fix(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True}, tenants=[{
        "name": "contoso", "tenant_id": "contoso.com",
        "credentials": [{"name": "graph", "client_id": APP_ID,
                         "client_secret": "Wr0ng~secret~value~pasted~here",
                         "permissions": ["presence.read", "presence.write", "users.read"]}],
    }])
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        def refused() -> bool:
            part = service.status.get("tenant/contoso/sign_in")
            return part is not None and part.state.value == "bad_credentials"

        await eventually(refused, clock)
        page = await browser.new_page()
        await sign_in(page, service)
        light = page.locator("article[data-part='tenant/contoso/sign_in']")
        await expect(light).to_have_class(re.compile(r"\bred\b"))
        await expect(light.locator(".code")).to_have_text("AADSTS7000215")
        await expect(light.locator(".fix")).to_contain_text("Paste the secret's Value")
        assert "Wr0ng~secret" not in await page.content()
        await page.screenshot(path=tmp_path / "screenshots" / "red_light.png", full_page=True)

        # The check page runs `m365pbx check` from the service: the same code and fix.
        await page.goto(base(service) + "/admin/check")
        await page.click("main button[type=submit]")
        refused = page.locator("tr.finding.fail", has_text="AADSTS7000215")
        await expect(refused.first).to_contain_text("Paste the secret's Value")
        await expect(page.locator("tr.finding.ok").first).to_be_visible()
        await page.screenshot(path=tmp_path / "screenshots" / "check.png", full_page=True)

        # A broken file is refused whole: nothing changes, the page and a light say why.
        config = tmp_path / "m365pbx.yaml"
        wrong = config.read_text()
        config.write_text(wrong + "unknown_section: 1\n")
        await page.goto(base(service) + "/admin/configuration")
        await page.click("#apply")
        await expect(page.locator("#applied .error")).to_contain_text("unknown_section")
        part = service.status.get("tenant/contoso/sign_in")
        assert part is not None and part.state.value == "bad_credentials"
        await page.goto(base(service) + "/admin")
        await expect(page.locator("article[data-part='configuration']")).to_have_class(
            re.compile(r"\bred\b"))

        # The secret fixed in the file and applied: green without a restart. A change that
        # needs one is named, and the light says so.
        config.write_text(wrong.replace("Wr0ng~secret~value~pasted~here", APP_SECRET)
                          .replace("min_poll_interval: 10s", "min_poll_interval: 20s"))
        await page.goto(base(service) + "/admin/configuration")
        await page.click("#apply")
        await expect(page.locator("ul.in-effect")).to_contain_text(
            "tenants[contoso].credentials[graph].client_secret")
        await expect(page.locator("ul.needs-restart")).to_contain_text(
            "teams_to_pbx.min_poll_interval")
        assert APP_SECRET not in await page.content()
        await page.screenshot(path=tmp_path / "screenshots" / "configuration.png",
                              full_page=True)

        def tenant_green() -> bool:
            parts = [s for s in service.status.snapshot() if s.part.startswith("tenant/")]
            return bool(parts) and all(s.state.value == "ok" for s in parts)

        await eventually(tenant_green, clock)
        await page.goto(base(service) + "/admin")
        await expect(light).to_have_class(re.compile(r"\bgreen\b"))
        await expect(page.locator("article.red[data-part^='tenant/']")).to_have_count(0)
        await expect(page.locator("article.amber[data-part^='tenant/']")).to_have_count(0)
        await expect(page.locator("article[data-part='configuration']")).to_have_class(
            re.compile(r"\bamber\b"))
        await expect(page.locator("article[data-part='configuration']")).to_contain_text(
            "teams_to_pbx.min_poll_interval")
        await page.screenshot(path=tmp_path / "screenshots" / "green_light.png",
                              full_page=True)
        await page.goto(base(service) + "/admin/audit")
        row = page.locator("table.audit tbody tr", has_text="configuration.applied").first
        await expect(row).to_contain_text("admin alice")
        await expect(row).to_contain_text("client_secret")
        assert APP_SECRET not in await page.content()


async def test_the_matching_page_shows_ambiguous_and_unmatched_people_with_reasons(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        switchboard(service).replace_users(pbx_users(
            ("anna", "Anna Schmidt"), ("anna2", "Anna Schmidt"), ("ben", "Ben Weber"),
            ("zoe", "Zoe Nobody")))
        await eventually(lambda: len(service.hub.people()) == 1, clock)
        page = await browser.new_page()
        await sign_in(page, service)
        await page.goto(base(service) + "/admin/matching")
        section = page.locator("section[data-connection='switchboard']")
        await expect(section.locator(".count.green")).to_have_text("1 matched")
        await expect(section.locator(".count.amber")).to_have_text("2 ambiguous")
        ambiguous = section.locator("table.ambiguous tbody tr")
        await expect(ambiguous).to_have_count(2)
        await expect(ambiguous.first).to_contain_text("Anna Schmidt")
        zoe = section.locator("table.unmatched tr:has-text('zoe')")
        await expect(zoe).to_contain_text("Zoe Nobody")
        assert (await zoe.locator("td").last.inner_text()).strip()  # a reason in words
        await page.screenshot(path=tmp_path / "screenshots" / "matching.png", full_page=True)


async def test_the_mapping_page_shows_the_rules_in_effect_and_explains_a_presence(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True}, pbx_connections=[{
        "name": "switchboard", "kind": "api", "tenant": "contoso",
        "mapping": {"teams_to_pbx": [{"availability": "Busy", "activity": "Focusing",
                                      "pbx": "dnd"}],
                    "calendar_to_pbx": [{"show_as": "tentative", "pbx": "busy"}]}}])
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        page = await browser.new_page()
        await sign_in(page, service)
        await page.goto(base(service) + "/admin/mapping")
        await expect(page.locator("table.teams-to-pbx")).to_contain_text(
            "connection switchboard")
        await page.select_option("select[name=availability]", "Busy")
        await page.select_option("select[name=activity]", "Focusing")
        await page.click("form.explain-form button[type=submit]")
        await expect(page.locator("#answer")).to_contain_text("→ PBX dnd, because rule #")
        await page.select_option("select[name=activity]", "Busy")
        await page.click("form.explain-form button[type=submit]")
        await expect(page.locator("#answer")).to_contain_text("→ PBX busy")
        # The calendar's own rules: the connection's overlay makes tentative events busy.
        await expect(page.locator("table.calendar-to-pbx")).to_contain_text(
            "showAs tentative → busy (connection switchboard)")
        await page.select_option("select[name=show_as]", "tentative")
        await page.click("form.explain-form button[type=submit]")
        await expect(page.locator("#answer")).to_contain_text(
            "Calendar event shown as tentative → PBX busy, because rule #2")
        await page.screenshot(path=tmp_path / "screenshots" / "mapping.png", full_page=True)


async def test_a_session_outlives_a_restart_and_a_new_password_ends_it(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    config = tmp_path / "m365pbx.yaml"
    await create_admin(config)
    async with chromium() as browser:
        page = await browser.new_page()
        async with running(settings, clock) as service:
            await sign_in(page, service)
            await expect(page).to_have_url(re.compile(r"/admin$"))
        # m365pbx restarted (another process, the same store): still signed in.
        async with running(settings, clock) as service:
            await page.goto(base(service) + "/admin/audit")
            await expect(page).to_have_url(re.compile(r"/admin/audit$"))
            await expect(page.locator("table.audit tbody")).to_contain_text("admin.sign_in")
            result = await cli("admin", "password", "alice", "--password-stdin", "--config",
                               str(config), stdin="another long password\n")
            assert result.exit_code == 0, result.output
            await page.goto(base(service) + "/admin/audit")
            await expect(page).to_have_url(re.compile(r"/admin/login$"))


def pbx_shows(service: Service, key: str) -> str | None:
    """What the PBX shows for the person with PBX key `key`."""
    person = next((p for p in service.view.people() if p.key == key), None)
    return None if person is None or person.pbx is None else str(person.pbx.presence)


async def test_an_overlay_edited_in_the_ui_is_previewed_then_saved_and_in_effect(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    shots = tmp_path / "screenshots"
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        switchboard(service).replace_users(pbx_users(("anna", "Anna Schmidt")))
        await eventually(lambda: len(service.hub.people()) == 1, clock)
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: pbx_shows(service, "anna") == "dnd", clock)
        page = await browser.new_page()
        await sign_in(page, service)
        await page.goto(base(service) + "/admin/mapping?connection=switchboard"
                        "&availability=DoNotDisturb&activity=DoNotDisturb")
        await expect(page.locator("#answer")).to_contain_text("→ PBX dnd, because")

        # A mistake is named (with the likely word) and nothing is saved.
        editor = page.locator("textarea[name=overlay]")
        await editor.fill("teams_to_pbx:\n  - availability: DoNotDistrub\n    pbx: busy\n")
        await page.click("button[value=preview]")
        await expect(page.locator("#problems")).to_contain_text("DoNotDistrub")
        await expect(page.locator("#problems")).to_contain_text("nothing was saved")
        await page.click("button[value=save]")  # saving it is refused the same way
        await expect(page.locator("#problems")).to_contain_text("DoNotDistrub")
        async with service.store.transaction() as tx:
            assert await tx.mapping_overlays.find("switchboard") is None

        # Preview: `explain` with the overlay beside the rules in effect; nothing changes yet.
        overlay = ("teams_to_pbx:\n  - availability: DoNotDisturb\n"
                   "    activity: DoNotDisturb\n    pbx: busy\n")
        await editor.fill(overlay)
        await page.click("button[value=preview]")
        await expect(page.locator("#draft-answer")).to_contain_text("→ PBX busy, because")
        await expect(page.locator("#draft-answer")).to_contain_text("admin UI")
        await expect(page.locator("#answer")).to_contain_text("→ PBX dnd, because")
        await expect(page.locator("table.teams-to-pbx")).to_contain_text("admin UI")
        await page.screenshot(path=shots / "mapping_preview.png", full_page=True)
        assert pbx_shows(service, "anna") == "dnd"
        async with service.store.transaction() as tx:
            assert await tx.mapping_overlays.find("switchboard") is None

        # Saved: in effect at once, for the page and for what the PBX shows.
        await page.click("button[value=save]")
        await expect(page.locator("#saved")).to_be_visible()
        await expect(page.locator("#answer")).to_contain_text("→ PBX busy, because")
        await expect(page.locator("textarea[name=overlay]")).to_have_value(
            re.compile(r"pbx: busy"))
        await page.screenshot(path=shots / "mapping_saved.png", full_page=True)
        await eventually(lambda: pbx_shows(service, "anna") == "busy", clock)

        # Anna's page: her last changes, newest first (dnd, then busy under the overlay).
        await page.goto(base(service) + "/admin/people?q=anna")
        await page.click("tbody a")
        history = page.locator("table.history tbody tr")
        await expect(history.first).to_contain_text("busy")
        await expect(history.first).to_contain_text("DoNotDisturb / DoNotDisturb")
        await expect(page.locator("table.history")).to_contain_text("dnd")
        await page.screenshot(path=shots / "person_history.png", full_page=True)

        await page.goto(base(service) + "/admin/audit")
        row = page.locator("table.audit tbody tr", has_text="mapping.edit")
        await expect(row).to_contain_text("admin alice")
        await expect(row).to_contain_text("switchboard")
        await expect(row).to_contain_text('"pbx": "busy"')
        await page.screenshot(path=shots / "audit_mapping.png", full_page=True)

    # After a restart the saved overlay is still in effect.
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(("anna", "Anna Schmidt")))
        await eventually(lambda: pbx_shows(service, "anna") == "busy", clock)


async def test_pin_an_ambiguous_person_and_exclude_people_from_the_ui(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    shots = tmp_path / "screenshots"
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    await create_admin(tmp_path / "m365pbx.yaml")
    async with running(settings, clock) as service, chromium() as browser:
        switchboard(service).replace_users(pbx_users(
            ("anna", "Anna Schmidt"), ("anna2", "Anna Schmidt"), ("ben", "Ben Weber"),
            ("zoe", "Zoe Nobody")))
        await eventually(lambda: len(service.hub.people()) == 1, clock)
        page = await browser.new_page()
        await sign_in(page, service)
        await page.goto(base(service) + "/admin/matching")
        section = page.locator("section[data-connection='switchboard']")
        await expect(section.locator(".count.amber")).to_have_text("2 ambiguous")

        # A pin without the CSRF token is refused.
        forged = await page.request.post(base(service) + "/admin/matching/pin", form={
            "connection": "switchboard", "key": "anna", "teams_user": "anna@contoso.com"},
            max_redirects=0)
        assert forged.status == 403

        # Each button posts a form answered by a redirect back to the page: wait for that
        # page to load before the next step (a reload while it loads finds no page).
        async with page.expect_navigation():
            await section.locator("table.ambiguous tr[data-key='anna'] button.pin").first.click()
        await eventually(lambda: {p.key for p in service.hub.people()} == {"anna", "ben"},
                         clock)
        await page.reload()
        await expect(section.locator(".count.green")).to_have_text("2 matched")
        await expect(section.locator(".count.amber")).to_have_text("0 ambiguous")
        await expect(page.locator("table.overrides tr[data-key='anna']")).to_contain_text(
            "pinned to")

        # Exclude an unmatched PBX user here, and a matched person from their page.
        async with page.expect_navigation():
            await section.locator("table.unmatched tr[data-key='zoe'] button.exclude").click()
        await expect(page.locator("table.overrides tr[data-key='zoe']")).to_contain_text(
            "excluded")
        await page.screenshot(path=shots / "matching_pinned.png", full_page=True)
        await page.goto(base(service) + "/admin/people?q=ben")
        await page.click("tbody a")
        async with page.expect_navigation():
            await page.click("button.exclude")
        await eventually(lambda: {p.key for p in service.hub.people()} == {"anna"}, clock)

        # Removing the exclusion matches Ben again.
        await page.goto(base(service) + "/admin/matching")
        async with page.expect_navigation():
            await page.locator("table.overrides tr[data-key='ben'] button.danger").click()
        await eventually(lambda: {p.key for p in service.hub.people()} == {"anna", "ben"},
                         clock)

        await page.goto(base(service) + "/admin/audit")
        trail = page.locator("table.audit tbody")
        for action in ("matching.pin", "matching.exclude", "matching.exclude_removed"):
            await expect(trail).to_contain_text(action)
        await page.screenshot(path=shots / "audit_matching.png", full_page=True)


async def test_an_overlay_and_a_pin_saved_by_another_process_take_effect(
    sim_server: RunningServer, clock: VirtualClock, tmp_path: Path,
) -> None:
    settings = settings_for(sim_server, tmp_path, admin={"enabled": True})
    async with running(settings, clock) as service:
        switchboard(service).replace_users(pbx_users(
            ("anna", "Anna Schmidt"), ("anna2", "Anna Schmidt")))
        await in_teams(sim_server, "anna@contoso.com",
                       {"preferred": {"availability": "DoNotDisturb",
                                      "activity": "DoNotDisturb"}})
        await eventually(lambda: service.hub.people() == [] and bool(
            service.tenants["contoso"].parts.directory.connections[0].result), clock)
        # Another m365pbx process on the same database (its admin UI) saves both.
        async with service.store.transaction() as tx:
            await tx.matching_overrides.put("switchboard", "anna2", kind="pin",
                                            teams_user="anna@contoso.com",
                                            now=clock.now(), by="admin bob")
            await tx.mapping_overlays.put("switchboard", {"teams_to_pbx": [
                {"availability": "DoNotDisturb", "activity": "DoNotDisturb", "pbx": "away"}]},
                now=clock.now(), by="admin bob")
        await eventually(lambda: [p.key for p in service.hub.people()] == ["anna2"], clock)
        await eventually(lambda: pbx_shows(service, "anna2") == "away", clock)
