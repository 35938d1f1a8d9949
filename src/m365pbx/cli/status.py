"""`m365pbx status`: every part's state as the running (or stopped) service last recorded it.

Reads the store's `part_status` table (written by the service on each change and every
minute), so it works while m365pbx runs, after it stopped, and from another host sharing
the PostgreSQL database. Exit status: 0 when every part is ok, 1 when something is not
(or a record is stale: its node stopped writing without saying so), 2 for bad input.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from m365pbx.cli.app import EXIT_FAILED, app, reports_input_errors

if TYPE_CHECKING:
    from m365pbx.core.leases import Lease
    from m365pbx.core.nodes import NodeSummary
    from m365pbx.core.status import PartStatus
    from m365pbx.store import Repositories

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file naming the database. Default: $M365PBX_CONFIG, "
                      "else ./m365pbx.yaml if present."),
]

# The service writes every part at least once a minute while it runs.
STALE_AFTER = 180.0


class Format(StrEnum):
    """How `status` prints."""

    TEXT = "text"
    JSON = "json"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def is_stale(status: PartStatus, stopped: set[str], now: datetime, stale_after: float) -> bool:
    """Whether a record is too old to trust: its node neither writes nor said it stopped."""
    if status.node in stopped or status.written_at is None:
        return False
    return (now - status.written_at).total_seconds() > stale_after


def superseded_nodes(statuses: list[PartStatus], stopped: set[str]) -> set[str]:
    """Stopped nodes some running node wrote after (a new host name, a node taken out)."""
    newest: dict[str, datetime] = {}
    for status in statuses:
        if status.written_at is not None:
            newest[status.node] = max(newest.get(status.node, status.written_at),
                                      status.written_at)
    running = [when for node, when in newest.items() if node not in stopped]
    if not running:
        return set()
    return {node for node in stopped if node in newest and newest[node] < max(running)}


def report(statuses: list[PartStatus], now: datetime,
           stale_after: float = STALE_AFTER) -> dict[str, Any]:
    """The statuses as `--format json` prints them, with `ok` for the whole.

    A stopped node that a running node wrote after is shown but not counted.
    """
    stopped = {s.node for s in statuses if s.kind == "service" and s.state == "stopped"}
    superseded = superseded_nodes(statuses, stopped)
    parts = []
    for status in statuses:
        stale = is_stale(status, stopped, now, stale_after)
        counted = status.node not in superseded
        parts.append({
            "node": status.node, "part": status.part, "kind": status.kind,
            "state": status.state.value,
            "ok": not counted or (status.state.is_ok and not stale),
            "stale": stale, "superseded": not counted,
            "since": None if status.since is None else status.since.isoformat(),
            "error": status.error, "fix": status.fix, "counters": dict(status.counters),
            "written_at": None if status.written_at is None else status.written_at.isoformat(),
        })
    return {"ok": bool(parts) and all(p["ok"] for p in parts), "parts": parts}


def lease_report(leases: list[Lease], database_now: datetime) -> list[dict[str, Any]]:
    """Which node holds which job (several nodes), live by the database's clock or not."""
    return [{"job": lease.job, "holder": lease.holder, "epoch": lease.epoch,
             "expires_at": lease.expires_at.isoformat(),
             "live": lease.expires_at > database_now} for lease in leases]


def node_report(nodes: list[NodeSummary]) -> list[dict[str, Any]]:
    """Each node of the installation: live or gone (the database's clock), the jobs it holds
    and their load (a tenant weighs its matched people)."""
    return [{"node": n.node, "live": n.live, "started_at": n.started_at.isoformat(),
             "last_seen": n.last_seen.isoformat(),
             "stopped_at": None if n.stopped_at is None else n.stopped_at.isoformat(),
             "jobs": list(n.jobs), "load": n.load} for n in nodes]


def _print_nodes(nodes: list[dict[str, Any]]) -> None:
    typer.echo("nodes:")
    for node in nodes:
        seen = _when(datetime.fromisoformat(node["last_seen"]))
        if node["live"]:
            state = f"live (seen {seen})"
        elif node["stopped_at"]:
            state = f"gone (stopped {_when(datetime.fromisoformat(node['stopped_at']))})"
        else:
            state = f"gone (not seen since {seen})"
        jobs = ", ".join(node["jobs"]) or "no job"
        load = f" (load {node['load']})" if node["jobs"] else ""
        typer.echo(f"  {node['node']}: {state}, holds {jobs}{load}")


def _print_leases(leases: list[dict[str, Any]]) -> None:
    typer.echo("jobs held (several nodes):")
    for lease in leases:
        held = (f"held by {lease['holder']}" if lease["live"]
                else f"free (last held by {lease['holder']})")
        typer.echo(f"  {lease['job']}: {held}, epoch {lease['epoch']}")


def _print_text(found: dict[str, Any], statuses: list[PartStatus], now: datetime) -> None:
    node = None
    for entry, status in zip(found["parts"], statuses, strict=True):
        if status.node != node:
            node = status.node
            newest = max((s.written_at for s in statuses if s.node == node and s.written_at),
                         default=None)
            typer.echo(f"node {node} (last written {_when(newest)})")
            if entry["superseded"]:
                typer.echo("  stopped; other nodes wrote after it: not counted")
        if entry["superseded"]:
            continue
        mark = "ok " if entry["ok"] else "!! "
        typer.echo(f"  {mark}{status.part}: {status.state.value} since {_when(status.since)}")
        if status.error:
            typer.echo(f"       error: {status.error}")
        if status.fix:
            typer.echo(f"       fix: {status.fix}")
        if entry["stale"]:
            typer.echo(f"       stale: not written since {_when(status.written_at)}; is "
                       f"m365pbx running on {status.node}?")
    typer.echo("everything is ok" if found["ok"] else
               f"{sum(not p['ok'] for p in found['parts'])} part(s) need attention "
               f"(at {_when(now)})")


@app.command("status")
@reports_input_errors
def status(
    config: ConfigOption = None,
    format_: Annotated[Format, typer.Option("--format", help="text or json.")] = Format.TEXT,
    stale_after: Annotated[float, typer.Option(
        help="Seconds after which a record its node did not refresh counts as stale.")
    ] = STALE_AFTER,
) -> None:
    """Show each part's state (sign-in, service accounts, subscriptions, directory sync, PBX
    connections, Teams writes, store) with since when, the error and the fix; with several
    nodes, which nodes are live and which node holds which job."""
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config

    settings = load_config(config)

    from m365pbx.core.nodes import summarize
    from m365pbx.service.balance import job_weights

    lifetime = settings.cluster.lease_lifetime.total_seconds()

    async def work(tx: Repositories) -> tuple[list[PartStatus], list[dict[str, Any]],
                                              list[dict[str, Any]]]:
        held, database_now = await tx.leases.all(), await tx.leases.database_now()
        nodes = summarize(await tx.nodes.all(), held, database_now, lifetime,
                          await job_weights(tx))
        return (await tx.part_status.all(), lease_report(held, database_now),
                node_report(nodes))

    statuses, leases, nodes = in_store(settings, work, create=False)
    now = datetime.now(UTC)
    found = report(statuses, now, stale_after)
    if nodes:
        found["nodes"] = nodes
    if leases:
        found["leases"] = leases
    if format_ is Format.JSON:
        typer.echo(json.dumps(found, indent=2))
    elif not statuses:
        typer.echo("nothing recorded yet: m365pbx serve has not run against this database")
    else:
        _print_text(found, statuses, now)
        if nodes:
            _print_nodes(nodes)
        if leases:
            _print_leases(leases)
    if not found["ok"]:
        raise typer.Exit(EXIT_FAILED)
