"""Prometheus metrics read from the running parts at scrape time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from m365pbx.core.status import PartState, PartStatus

if TYPE_CHECKING:
    from m365pbx.app import Service


class ServiceCollector(Collector):
    """Counters of the hub, the receiver and the pollers; gauges of people and state."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        service = self.service
        hub = CounterMetricFamily("m365pbx_hub_events", "Hub events by kind", labels=["kind"])
        for kind, count in sorted(service.hub.counters.items()):
            hub.add_metric([kind], count)
        yield hub
        received = CounterMetricFamily("m365pbx_webhook_notifications",
                                       "Webhook notifications by outcome", labels=["outcome"])
        for outcome, count in sorted(service.receiver.counters.items()):
            received.add_metric([outcome], count)
        yield received
        api = CounterMetricFamily("m365pbx_api_handoff",
                                  "Presence API input handed between nodes, shown states "
                                  "shared, by outcome", labels=["outcome"])
        if service.cluster.api_everywhere is not None:
            for outcome, count in sorted(service.cluster.api_everywhere.counted().items()):
                api.add_metric([outcome], count)
        yield api
        repairs = CounterMetricFamily("m365pbx_reconcile_repairs",
                                      "Differences reconciliation found and repaired",
                                      labels=["tenant"])
        rounds = CounterMetricFamily("m365pbx_poll_rounds", "Presence polling rounds",
                                     labels=["tenant"])
        people = GaugeMetricFamily("m365pbx_people", "Matched people", labels=["tenant"])
        throttled = CounterMetricFamily("m365pbx_graph_throttled",
                                        "Graph answers 429 (throttled), retried or not",
                                        labels=["tenant"])
        beyond = GaugeMetricFamily(
            "m365pbx_people_beyond_capacity",
            "People no service account can carry (650 each): polled, not notified",
            labels=["tenant"])
        missing = GaugeMetricFamily("m365pbx_service_accounts_missing",
                                    "Service accounts to add so that everyone is notified",
                                    labels=["tenant"])
        signed_in = GaugeMetricFamily("m365pbx_tenant_signed_in",
                                      "1 while the tenant's app credentials sign in, else 0",
                                      labels=["tenant"])
        for name, runtime in service.tenants.items():
            parts = runtime.parts
            if parts.pool is not None:
                shortfall = parts.pool.shortfall()
                beyond.add_metric([name], shortfall.unassigned)
                missing.add_metric([name], shortfall.accounts_missing)
            signed_in.add_metric([name], 0 if any(
                w.failure() is not None for w in runtime.sign_ins) else 1)
            repairs.add_metric([name], parts.poller.repairs)
            rounds.add_metric([name], parts.poller.rounds)
            people.add_metric([name], parts.directory.status.people)
            clients = {id(c): c for c in (parts.app_client, parts.writer_client) if c is not None}
            if parts.pool is not None:
                clients.update((id(o.client), o.client) for o in parts.pool.owners.values())
            throttled.add_metric([name], sum(c.throttled for c in clients.values()))
        yield repairs
        yield rounds
        yield people
        yield throttled
        yield beyond
        yield missing
        yield signed_in
        writes = CounterMetricFamily(
            "m365pbx_teams_writes",
            "Teams writes (sessions, preferred presence, status message) by outcome: "
            "written, throttled, unavailable, held_during_outage, probes, recoveries; "
            "requests and batches are the HTTP requests that carried them",
            labels=["kind"])
        for kind, count in sorted(service.teams_sink.counters.items()):
            writes.add_metric([kind], count)
        yield writes
        status = service.teams_sink.status()
        down = GaugeMetricFamily("m365pbx_teams_writes_held",
                                 "1 while Graph is unavailable and Teams writes wait")
        down.add_metric([], 1 if status.down else 0)
        yield down
        waiting = GaugeMetricFamily("m365pbx_teams_writes_waiting",
                                    "People whose Teams write waits for Graph to come back")
        waiting.add_metric([], status.waiting)
        yield waiting
        unknown = CounterMetricFamily("m365pbx_unknown_teams_values",
                                      "Teams values Microsoft sent that m365pbx does not know")
        unknown.add_metric([], service.converter.unknown.total)
        yield unknown
        yield from part_metrics(service.status.snapshot())
        yield from calendar_metrics(service)
        yield from service.contacts.metrics()


def calendar_metrics(service: Service) -> Iterator[Metric]:
    """Calendar → PBX: people followed, reads, events held, subscriptions, timer lateness."""
    people = GaugeMetricFamily("m365pbx_calendar_people", "People whose calendar is followed",
                               labels=["tenant"])
    reads = CounterMetricFamily("m365pbx_calendar_reads", "calendarView reads by outcome",
                                labels=["tenant", "outcome"])
    blocks = GaugeMetricFamily("m365pbx_calendar_events_ahead",
                               "Calendar events held for the PBX (in progress or to come)",
                               labels=["tenant"])
    subscriptions = GaugeMetricFamily("m365pbx_calendar_subscriptions",
                                      "Event change subscriptions by state (active, missing)",
                                      labels=["tenant", "state"])
    notified = CounterMetricFamily("m365pbx_calendar_notifications",
                                   "Event change notifications received", labels=["tenant"])
    for name, runtime in service.tenants.items():
        calendar = runtime.parts.calendar
        if calendar is None:
            continue
        status = calendar.status
        people.add_metric([name], status.people)
        reads.add_metric([name, "ok"], status.reads)
        reads.add_metric([name, "failed"], status.failed_reads)
        blocks.add_metric([name], status.blocks)
        events = runtime.parts.calendar_subscriptions
        if events is not None:
            health = events.health()
            subscriptions.add_metric([name, "active"], health["active"])
            subscriptions.add_metric([name, "missing"], health["missing"])
            notified.add_metric([name], events.notifications)
    yield from (people, reads, blocks, subscriptions, notified)
    timers = service.hub.timers
    pending = GaugeMetricFamily("m365pbx_hub_timers_pending",
                                "People with a wake-up pending (calendar starts and ends, "
                                "hold-downs, session refreshes)")
    pending.add_metric([], len(timers))
    yield pending
    lateness = HistogramMetricFamily("m365pbx_hub_timer_lateness_seconds",
                                     "How long after its time each wake-up fired")
    cumulative, buckets = 0, []
    for bound, count in zip((*timers.lateness_bounds, float("inf")), timers.lateness_counts,
                            strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
    lateness.add_metric([], buckets, sum_value=timers.lateness_sum)
    yield lateness


def part_metrics(statuses: Iterable[PartStatus]) -> Iterator[Metric]:
    """One gauge per part and state: 1 for the part's present state, 0 for the others."""
    state = GaugeMetricFamily("m365pbx_part_state",
                              "1 for each part's present state (ok, starting, disabled, "
                              "degraded, stalled, stopped, bad_credentials, error), else 0",
                              labels=["part", "kind", "state"])
    since = GaugeMetricFamily("m365pbx_part_state_since_seconds",
                              "When each part's present state began (Unix time)",
                              labels=["part", "kind"])
    for status in statuses:
        for value in PartState:
            state.add_metric([status.part, status.kind, value.value],
                             1 if status.state is value else 0)
        if status.since is not None:
            since.add_metric([status.part, status.kind], status.since.timestamp())
    yield state
    yield since
