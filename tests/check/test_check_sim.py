"""`m365pbx check` against the simulator: each problem reported in words, with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from m365pbx.check import Status, exit_status
from m365sim.clock import VirtualClock
from m365sim.directory.generate import generate_users
from m365sim.server import RunningServer
from tests.check.conftest import (
    GOOD_APP,
    NO_CONSENT_APP,
    NO_WRITE_APP,
    PASSWORD,
    TENANT_ID,
    about,
    check,
    only,
    sim_of,
    webhook_endpoint,
    write_config,
)
from tests.e2e.harness import free_port


def _account(upn: str, sign_in: str = "password") -> dict[str, str]:
    entry = {"upn": upn, "credential": "graph", "sign_in": sign_in}
    if sign_in == "password":
        entry["password"] = PASSWORD
    return entry


async def test_an_all_good_tenant_is_all_ok(server: RunningServer, check_clock: VirtualClock,
                                            tmp_path: Path) -> None:
    findings = await check(write_config(server, tmp_path), check_clock)
    assert only(findings, Status.WARN) == [] and only(findings, Status.FAIL) == []
    assert exit_status(findings) == 0
    said = [f.message for f in findings]
    assert any("Presence.ReadWrite.All is granted" in m for m in said)
    assert any("signs in with its password" in m for m in said)
    assert any("Teams licence" in m for m in said)
    assert any("nothing to reach" in m for m in said)


async def test_a_missing_permission_is_named_with_the_admin_consent_url(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    # The app was registered without Presence.ReadWrite.All, yet presence.write is configured.
    findings = await check(write_config(server, tmp_path, app_id=NO_WRITE_APP), check_clock)
    failed = only(findings, Status.FAIL)
    assert len(failed) == 1, failed
    assert "lacks the application permission Presence.ReadWrite.All" in failed[0].message
    assert 'PBX → Teams: calls as "In a call"' in failed[0].message
    assert (f"{server.url}/{TENANT_ID}/adminconsent?client_id={NO_WRITE_APP}"
            in failed[0].fix)
    assert exit_status(findings) == 2


async def test_a_missing_delegated_permission_stops_notifications(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    async with webhook_endpoint() as url:
        findings = await check(write_config(server, tmp_path, app_id=NO_WRITE_APP,
                                            permissions=("presence.read", "users.read"),
                                            public_url=url), check_clock)
    lacking = about(findings, "lacks the delegated permission Presence.Read.All")
    assert [f.status for f in lacking] == [Status.FAIL]
    assert f"adminconsent?client_id={NO_WRITE_APP}" in lacking[0].fix


@pytest.mark.parametrize(("skew", "status", "code"), [(600, Status.FAIL, 2),
                                                      (-120, Status.WARN, 1)])
async def test_a_skewed_clock_is_reported_with_ntp_as_the_fix(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path,
        skew: float, status: Status, code: int) -> None:
    sim_of(server).settings.date_skew_s = skew  # Microsoft's Date runs ahead (or behind)
    findings = await check(write_config(server, tmp_path), check_clock)
    clock = [f for f in findings if f.subject == "clock"]
    assert [f.status for f in clock] == [status]
    words = "behind" if skew > 0 else "ahead of"
    assert f"{'10 min' if skew > 0 else '2 min'} {words} Microsoft's" in clock[0].message
    assert "NTP" in clock[0].fix
    assert exit_status(findings) == code


async def test_an_mfa_account_with_a_password_is_told_to_use_device_code(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    path = write_config(server, tmp_path, accounts=[_account("svc-mfa@contoso.com")])
    findings = await check(path, check_clock)
    failed = only(findings, Status.FAIL)
    assert [f.subject for f in failed] == ["service account svc-mfa@contoso.com"]
    assert failed[0].code == "AADSTS50076"
    assert "multi-factor authentication" in failed[0].message
    assert "sign_in: device_code" in failed[0].fix and "m365pbx signin" in failed[0].fix


async def test_a_device_code_account_not_signed_in_yet(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    path = write_config(server, tmp_path, accounts=[_account("svc-mfa@contoso.com",
                                                             "device_code")])
    findings = await check(path, check_clock, store_problem="there is no database yet")
    failed = only(findings, Status.FAIL)
    assert len(failed) == 1
    assert "not signed in with a device code yet (there is no database yet)" in (
        failed[0].message)
    assert failed[0].fix.startswith("Run 'm365pbx signin svc-mfa@contoso.com'")


async def test_an_account_without_a_teams_licence(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    path = write_config(server, tmp_path, accounts=[_account("svc-nolicence@contoso.com")])
    failed = only(await check(path, check_clock), Status.FAIL)
    assert [f.message for f in failed] == [
        "has no enabled Teams licence: Graph refuses presence subscriptions for it"]


@pytest.mark.parametrize(("mode", "status"), [("auto", Status.WARN), ("webhook", Status.FAIL)])
async def test_a_full_service_account(server: RunningServer, check_clock: VirtualClock,
                                      tmp_path: Path, mode: str, status: Status) -> None:
    sim = sim_of(server)
    tenant = sim.directory.find_tenant(TENANT_ID)
    assert tenant is not None
    generate_users(sim, tenant, users=700, seed=7, teams_share=1.0, disabled_share=0.0)
    async with webhook_endpoint() as url:
        findings = await check(write_config(server, tmp_path, public_url=url,
                                            teams_to_pbx={"mode": mode}), check_clock)
    capacity = [f for f in findings if f.area == "capacity"]
    assert [f.status for f in capacity] == [status]
    # 700 generated + anna, ben and the licensed service account (the MFA one too).
    assert capacity[0].message.startswith("704 people (704 Teams users in scope for "
                                          "switchboard), but 1 usable service account(s) "
                                          "carry at most 650 (650 each): 54 get no "
                                          "notifications")
    assert capacity[0].fix.startswith("Declare 1 more service account(s)")
    # The endpoint answers the handshake, but Graph would refuse its plain HTTP.
    handshake = about(findings, "echoed the validation token as text/plain")
    assert [f.status for f in handshake] == [Status.OK, Status.OK]  # and its /lifecycle
    assert exit_status(findings) == 2


async def test_a_users_file_counts_only_the_matched_people(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    users = tmp_path / "pbx-users.csv"
    users.write_text("h323,cn\nanna,Anna Schmidt\nben,Ben Weber\nzoe,Zoe Nobody\n")
    async with webhook_endpoint() as url:
        path = write_config(server, tmp_path, public_url=url, pbx_connections=[
            {"name": "office", "kind": "api", "tenant": "contoso", "users_file": str(users)}])
        findings = await check(path, check_clock)
    capacity = [f for f in findings if f.area == "capacity"]
    assert [f.status for f in capacity] == [Status.OK]
    assert capacity[0].message.startswith("2 people (2 matched by office's users_file)")


async def test_an_http_public_url_that_nobody_answers(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    findings = await check(write_config(server, tmp_path, public_url=url), check_clock)
    public = [f for f in findings if f.area == "public url"]
    assert [f.status for f in public] == [Status.FAIL, Status.FAIL]
    assert "plain HTTP: Graph delivers notifications only to https:// URLs" in public[0].message
    assert "reverse proxy" in public[0].fix and "https://" in public[0].fix
    assert "the validation handshake at " + url + "/graph/notifications failed: no " \
           "connection" in public[1].message
    assert "start it and run the check again" in public[1].fix


async def test_an_unreachable_login_host(server: RunningServer, check_clock: VirtualClock,
                                         tmp_path: Path) -> None:
    path = write_config(server, tmp_path, microsoft={
        "login_url": f"https://127.0.0.1:{free_port()}", "graph_url": server.url,
        "ca_file": str(server.ca_file)})
    findings = await check(path, check_clock)
    login = [f for f in findings if f.subject == "sign-in host"]
    assert [f.status for f in login] == [Status.FAIL]
    assert "cannot reach 127.0.0.1:" in login[0].message
    assert "DNS, the firewall and the proxy" in login[0].fix
    assert about(findings, "not checked: the sign-in host cannot be reached")
    assert exit_status(findings) == 2


async def test_a_proxy_that_refuses_is_named(server: RunningServer, check_clock: VirtualClock,
                                             tmp_path: Path) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"
    path = write_config(server, tmp_path, microsoft={
        "login_url": server.url, "graph_url": server.url, "ca_file": str(server.ca_file),
        "proxy": proxy})
    findings = await check(path, check_clock)
    hosts = [f for f in findings if f.area == "hosts"]
    assert {f.status for f in hosts} == {Status.FAIL}
    assert f"cannot reach the proxy {proxy} on the way to 127.0.0.1:" in hosts[0].message
    assert "microsoft.proxy" in hosts[0].fix


async def test_an_untrusted_certificate_is_a_tls_failure(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    from m365sim.tls import ensure_certificates

    other_ca.write_bytes(ensure_certificates(tmp_path / "other", ["127.0.0.1"])
                         .ca_file.read_bytes())
    path = write_config(server, tmp_path, microsoft={
        "login_url": server.url, "graph_url": server.url, "ca_file": str(other_ca)})
    findings = await check(path, check_clock)
    tls = about(findings, "TLS certificate chain of")
    assert tls and {f.status for f in tls} == {Status.FAIL}
    assert "microsoft.ca_file" in tls[0].fix


async def test_the_app_of_another_tenant_cannot_sign_in(
        server: RunningServer, check_clock: VirtualClock, tmp_path: Path) -> None:
    path = write_config(server, tmp_path, app_id="0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a")
    failed = only(await check(path, check_clock), Status.FAIL)
    assert failed[0].subject == "tenant contoso, credential graph"
    assert failed[0].code == "AADSTS700016"
    assert "Check the client id and the tenant id" in failed[0].fix
    assert GOOD_APP not in failed[0].message


async def test_an_app_without_admin_consent(server: RunningServer, check_clock: VirtualClock,
                                            tmp_path: Path) -> None:
    findings = await check(write_config(server, tmp_path, app_id=NO_CONSENT_APP), check_clock)
    consent = about(findings, "no application permission with admin consent")
    assert [f.status for f in consent] == [Status.FAIL]
    for name in ("User.Read.All", "Presence.Read.All", "Presence.ReadWrite.All"):
        assert name in consent[0].fix
    assert f"/{TENANT_ID}/adminconsent?client_id={NO_CONSENT_APP}" in consent[0].fix
