"""`m365sim`: serve the simulator, and drive a running one through its control API."""

from __future__ import annotations

import json
import os
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import httpx
import typer

if TYPE_CHECKING:
    from m365sim.simulator import Simulator

app = typer.Typer(name="m365sim", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="A Microsoft 365 simulator (Entra ID + Graph) for tests and demos.")
teams = typer.Typer(no_args_is_help=True, help="Act as a person in their Teams client.")
meeting = typer.Typer(no_args_is_help=True, help="Create or cancel meetings.")
faults = typer.Typer(no_args_is_help=True, help="Inject 429/5xx answers into Graph calls.")
devicecode = typer.Typer(no_args_is_help=True, help="Act at the device-login page.")
show = typer.Typer(no_args_is_help=True, help="Read what apps did: sessions, subscriptions.")
clock = typer.Typer(no_args_is_help=True, help="The simulator's clock.")
for sub, name in ((teams, "teams"), (meeting, "meeting"), (faults, "faults"),
                  (devicecode, "devicecode"), (show, "show"), (clock, "clock")):
    app.add_typer(sub, name=name)

DEFAULT_URL = "https://127.0.0.1:8443"
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

Url = Annotated[str, typer.Option("--url", envvar="M365SIM_URL",
                                  help="Base URL of a running simulator.")]
CaFile = Annotated[Path | None, typer.Option(
    "--ca-file", envvar="M365SIM_CA_FILE", help="CA file printed by `m365sim serve`.")]
TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant id or domain.")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="User id or UPN.")]


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print an error line to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _segment(value: str) -> str:
    return quote(value, safe="@")


def control(url: str, ca_file: Path | None, method: str, path: str,
            body: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> Any:
    """Call the control API; print Graph's error and exit 1 when it refuses."""
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        if not ca_file.is_file():
            raise fail(f"CA file {ca_file} does not exist", EXIT_BAD_INPUT)
        verify = ssl.create_default_context(cafile=str(ca_file))
    try:
        with httpx.Client(base_url=url.rstrip("/"), verify=verify, timeout=30,
                          trust_env=False) as http:
            response = http.request(method, path, json=body, params=params)
    except httpx.ConnectError as exc:
        hint = " (is the CA trusted? pass --ca-file)" if "CERTIFICATE" in str(exc) else ""
        raise fail(f"cannot reach the simulator at {url}: {exc}{hint}") from None
    except httpx.HTTPError as exc:
        raise fail(f"request to {url}{path} failed: {exc}") from None
    try:
        answer = response.json() if response.content else None
    except ValueError:
        answer = response.text
    if response.is_error:
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict):
            raise fail(f"{response.status_code} {error.get('code')}: {error.get('message')}")
        raise fail(f"{response.status_code}: {answer}")
    return answer


def _print(answer: Any) -> None:
    typer.echo("ok" if answer is None else json.dumps(answer, indent=2, ensure_ascii=False))


def _user_path(tenant: str, user: str, tail: str) -> str:
    return f"/_sim/tenants/{_segment(tenant)}/users/{_segment(user)}/{tail}"


# --- serve -----------------------------------------------------------------------------------


def _default_cert_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "m365sim" / "tls"


def _latency(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, _, high = text.partition(",")
        low_ms, high_ms = float(low), float(high or low)
    except ValueError:
        raise fail(f"--latency-ms takes MIN,MAX in milliseconds, not {text!r}",
                   EXIT_BAD_INPUT) from None
    if low_ms < 0 or high_ms < low_ms:
        raise fail("--latency-ms needs 0 <= MIN <= MAX", EXIT_BAD_INPUT)
    return low_ms / 1000, high_ms / 1000


def describe_tenants(sim: Simulator, scenario: Path | None) -> list[str]:
    """Lines naming each tenant and app with their ids (secrets stay in the scenario)."""
    lines = []
    for tenant in sim.directory.tenants.values():
        users = sum(1 for u in tenant.users.values() if not u.deleted)
        lines.append(f"tenant {tenant.display_name}: id {tenant.id}, domains "
                     f"{', '.join(tenant.domains)}, {users} users")
        for registration in tenant.apps.values():
            kinds = [f"{len(registration.secrets)} secret(s)" if registration.secrets else "",
                     f"{len(registration.certificates)} certificate(s)"
                     if registration.certificates else "",
                     "public client flows" if registration.public_client else ""]
            where = f" (secret values: see {scenario})" if registration.secrets and scenario \
                else ""
            lines.append(f"  app {registration.display_name}: client id {registration.app_id}"
                         f"; {', '.join(k for k in kinds if k) or 'no credential'}{where}")
    return lines


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8443,
    scenario: Annotated[Path | None, typer.Option(help="Scenario YAML to load.")] = None,
    http: Annotated[bool, typer.Option("--http", help="Plain HTTP instead of HTTPS.")] = False,
    cert_dir: Annotated[Path | None, typer.Option(
        help="Where the CA and server certificate go (default ~/.cache/m365sim/tls).")] = None,
    latency_ms: Annotated[str | None, typer.Option(
        help="Notification latency MIN,MAX in ms (default: Microsoft's).")] = None,
    virtual_clock: Annotated[bool, typer.Option(
        "--virtual-clock", help="Time moves only via `m365sim clock advance`.")] = False,
    allow_http_webhooks: Annotated[bool, typer.Option(
        "--allow-http-webhooks",
        help="Deliver notifications to http:// URLs on loopback (Graph needs HTTPS).")] = False,
) -> None:
    """Run the simulator until Ctrl-C."""
    import asyncio

    from m365sim.clock import VirtualClock, WallClock
    from m365sim.scenario import ScenarioError, load_scenario_file
    from m365sim.server import serve_until_stopped
    from m365sim.simulator import SimSettings, Simulator

    settings = SimSettings()
    if allow_http_webhooks:
        settings.extra["notification_allow_http_loopback"] = True
    latency = _latency(latency_ms)
    if latency is not None:
        settings.notification_latency_s = latency
    sim_clock = VirtualClock(datetime.now(UTC)) if virtual_clock else WallClock()
    sim = Simulator(sim_clock, settings)
    if scenario is not None:
        try:
            load_scenario_file(sim, scenario)
        except (OSError, ScenarioError) as exc:
            raise fail(f"cannot load the scenario: {exc}", EXIT_BAD_INPUT) from None

    def ready(url: str, ca_file: Path | None) -> None:
        typer.echo(f"m365sim serving {url}")
        if ca_file is not None:
            typer.echo(f"CA certificate (trust it in clients): {ca_file}")
        exports = f"export M365SIM_URL={url}" + (
            f" M365SIM_CA_FILE={ca_file}" if ca_file else "")
        typer.echo(exports)
        for line in describe_tenants(sim, scenario):
            typer.echo(line)
        typer.echo("Press Ctrl-C to stop.", err=True)

    try:
        directory = None if http else (cert_dir or _default_cert_dir()).resolve()
        asyncio.run(serve_until_stopped(sim, host=host, port=port, tls=not http,
                                        cert_dir=directory, on_ready=ready))
    except OSError as exc:
        raise fail(str(exc)) from None
    typer.echo("m365sim stopped.", err=True)


# --- control sub-commands --------------------------------------------------------------------


@app.command()
def health(url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Check that a simulator answers (prints its clock)."""
    _print(control(url, ca_file, "GET", "/_sim/health"))


@app.command("load")
def load(path: Annotated[Path, typer.Argument(help="Scenario YAML or JSON.")],
         url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Load a scenario into a running simulator."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise fail(f"cannot read {path}: {exc}", EXIT_BAD_INPUT) from None
    _print(control(url, ca_file, "POST", "/_sim/scenario", data))


@app.command()
def generate(tenant: TenantOpt, users: Annotated[int, typer.Option(help="How many.")],
             seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
             url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Add generated users to a tenant (e.g. --users 50000)."""
    body: dict[str, Any] = {"users": users}
    if seed is not None:
        body["seed"] = seed
    _print(control(url, ca_file, "POST", f"/_sim/tenants/{_segment(tenant)}/generate", body))


@app.command()
def revoke(tenant: TenantOpt, user: UserOpt, url: Url = DEFAULT_URL,
           ca_file: CaFile = None) -> None:
    """Revoke a user's sign-in sessions: their refresh tokens fail with AADSTS50173."""
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "revokeSignInSessions")))


@clock.command("advance")
def clock_advance(seconds: Annotated[float, typer.Argument(help="Seconds to move on.")],
                  url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Move a virtual clock forward."""
    _print(control(url, ca_file, "POST", "/_sim/clock/advance", {"seconds": seconds}))


@teams.command("set")
def teams_set(tenant: TenantOpt, user: UserOpt,
              availability: Annotated[str, typer.Option(help="e.g. Busy")],
              activity: Annotated[str, typer.Option(help="e.g. InACall")],
              client: Annotated[str, typer.Option(help="Which Teams client.")] = "desktop",
              url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Set what the person's Teams client shows (signs the client in)."""
    body = {"client": client, "availability": availability, "activity": activity}
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "teams"), body))


@teams.command("offline")
def teams_offline(tenant: TenantOpt, user: UserOpt, url: Url = DEFAULT_URL,
                  ca_file: CaFile = None) -> None:
    """Sign the person out of every Teams client."""
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "teams"),
                   {"signed_in": False}))


@teams.command("prefer")
def teams_prefer(tenant: TenantOpt, user: UserOpt,
                 availability: Annotated[str, typer.Option(help="e.g. DoNotDisturb")],
                 activity: Annotated[str, typer.Option(help="e.g. DoNotDisturb")],
                 expiration: Annotated[str | None, typer.Option(help="e.g. PT1H")] = None,
                 url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Set the person's preferred presence, as chosen in Teams."""
    preferred: dict[str, Any] = {"availability": availability, "activity": activity}
    if expiration:
        preferred["expiration"] = expiration
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "teams"),
                   {"preferred": preferred}))


@teams.command("clear")
def teams_clear(tenant: TenantOpt, user: UserOpt, url: Url = DEFAULT_URL,
                ca_file: CaFile = None) -> None:
    """Reset the preferred presence (Teams: "Reset status")."""
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "teams"), {"preferred": None}))


@teams.command("status")
def teams_status(tenant: TenantOpt, user: UserOpt,
                 message: Annotated[str, typer.Option(help="Empty: remove it.")],
                 url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Set the person's status message."""
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "teams"),
                   {"status_message": message}))


@meeting.command("create")
def meeting_create(
    tenant: TenantOpt, user: UserOpt,
    subject: Annotated[str, typer.Option()] = "Meeting",
    start: Annotated[str | None, typer.Option(help="ISO 8601 start.")] = None,
    start_in: Annotated[str | None, typer.Option(help="Start relative to now, e.g. 5m.")] = None,
    duration: Annotated[str, typer.Option(help="e.g. 30m, 1h")] = "30m",
    show_as: Annotated[str, typer.Option(help="free/tentative/busy/oof/...")] = "busy",
    online: Annotated[bool, typer.Option("--online/--not-online",
                                         help="A Teams meeting.")] = True,
    url: Url = DEFAULT_URL, ca_file: CaFile = None,
) -> None:
    """Put a meeting into the person's calendar."""
    if (start is None) == (start_in is None):
        raise fail("give exactly one of --start and --start-in", EXIT_BAD_INPUT)
    body: dict[str, Any] = {"subject": subject, "duration": duration, "show_as": show_as,
                            "is_online_meeting": online}
    body["start" if start is not None else "start_in"] = start or start_in
    _print(control(url, ca_file, "POST", _user_path(tenant, user, "events"), body))


@meeting.command("cancel")
def meeting_cancel(tenant: TenantOpt, user: UserOpt,
                   event_id: Annotated[str, typer.Option("--id", help="The event id.")],
                   url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Cancel a meeting."""
    _print(control(url, ca_file, "DELETE",
                   _user_path(tenant, user, f"events/{_segment(event_id)}")))


@faults.command("set")
def faults_set(
    status: Annotated[int, typer.Option(help="429, 500, 503 or 504.")],
    path_prefix: Annotated[str, typer.Option(help="Requests it applies to.")] = "/v1.0/",
    method: Annotated[str | None, typer.Option()] = None,
    count: Annotated[int | None, typer.Option(help="How many requests (default all).")] = None,
    rate: Annotated[float | None, typer.Option(help="Share of requests, 0..1.")] = None,
    retry_after: Annotated[float | None, typer.Option(help="Retry-After seconds.")] = None,
    url: Url = DEFAULT_URL, ca_file: CaFile = None,
) -> None:
    """Add a fault rule."""
    body: dict[str, Any] = {"status": status, "path_prefix": path_prefix}
    for key, value in (("method", method), ("count", count), ("rate", rate),
                       ("retry_after_s", retry_after)):
        if value is not None:
            body[key] = value
    _print(control(url, ca_file, "POST", "/_sim/faults", body))


@faults.command("clear")
def faults_clear(url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Remove every fault rule."""
    _print(control(url, ca_file, "DELETE", "/_sim/faults"))


@faults.command("list")
def faults_list(url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Show the fault rules."""
    _print(control(url, ca_file, "GET", "/_sim/faults"))


@devicecode.command("approve")
def devicecode_approve(code: Annotated[str, typer.Option(help="The user code shown.")],
                       user: UserOpt, url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Sign a user in for a device code, as at microsoft.com/devicelogin."""
    _print(control(url, ca_file, "POST", "/_sim/devicecode/approve",
                   {"user_code": code, "upn": user}))


@devicecode.command("deny")
def devicecode_deny(code: Annotated[str, typer.Option(help="The user code shown.")],
                    url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Decline a device-code sign-in."""
    _print(control(url, ca_file, "POST", "/_sim/devicecode/deny", {"user_code": code}))


@show.command("sessions")
def show_sessions(tenant: TenantOpt, user: UserOpt, url: Url = DEFAULT_URL,
                  ca_file: CaFile = None) -> None:
    """A person's presence: Teams clients, app sessions, preferred, aggregate."""
    _print(control(url, ca_file, "GET", _user_path(tenant, user, "presence")))


@show.command("subscriptions")
def show_subscriptions(url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """Every subscription apps created."""
    _print(control(url, ca_file, "GET", "/_sim/subscriptions"))


@show.command("deliveries")
def show_deliveries(limit: Annotated[int, typer.Option(help="Most recent N.")] = 50,
                    url: Url = DEFAULT_URL, ca_file: CaFile = None) -> None:
    """The notification delivery log."""
    _print(control(url, ca_file, "GET", "/_sim/deliveries", params={"limit": limit}))


def main() -> None:
    """Entry point of the `m365sim` console script."""
    app(prog_name="m365sim")


if __name__ == "__main__":  # pragma: no cover
    main()
