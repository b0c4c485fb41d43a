"""GET /metrics: the Prometheus text format, written by prometheus_client from a registry
of the daemon's own (not the library's global one: several daemons in one process, as in
the tests, do not clash). Everything is read at scrape time off the daemon's parts, as
the health document is: the state (lag, circuits, in flight, enabled, generation) and the
counters, which the hot path keeps as plain integers (each delivery's ending once, in
hookd.telemetry.hookstats; records in endings.Counters, whose totals are the hooks' sums), so a
delivery costs no lock and no label lookup. Label values are hook ids, endpoints
(`scheme://host:port`), topics and fixed words: never anything from an event."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hookd.events.trace import DROPPED
from hookd.service.hookview import enabled, hook_states
from hookd.telemetry.hookstats import OUTCOMES, STATUS_CLASSES, Buckets

if TYPE_CHECKING:
    from hookd.delivery.sender import HttpSender
    from hookd.kafka.consumer import ConsumerLoop
    from hookd.kafka.parking import ParkingLot
    from hookd.pipeline.dispatch import Dispatcher
    from hookd.pipeline.runtime import Runtime


class Parts(Protocol):
    """What the collector reads (the Daemon; a fake in unit tests). Each part is None
    until started."""

    dispatcher: Dispatcher | None
    sender: HttpSender | None
    source: ConsumerLoop | None
    retries: ConsumerLoop | None
    parking: ParkingLot | None
    reloads: dict[str, int]  # "ok", "rejected"

    def current(self) -> Runtime | None: ...
    def ready(self) -> bool: ...
    def stalled(self) -> int: ...


def _histogram(family: HistogramMetricFamily, labels: list[str], buckets: Buckets) -> None:
    family.add_metric(labels, buckets.cumulative(), buckets.sum)


def _split(topic_partition: str) -> tuple[str, str]:
    topic, _, partition = topic_partition.rpartition("-")
    return topic, partition


class DaemonCollector(Collector):
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def collect(self) -> Iterator[Metric]:
        parts = self.parts
        runtime, dispatcher, sender = parts.current(), parts.dispatcher, parts.sender
        stats = dispatcher.stats if dispatcher else None
        counters = dispatcher.counters if dispatcher else None

        deliveries = CounterMetricFamily("hookd_deliveries", "Deliveries by how they ended "
                                         "(retried: a next attempt waits in memory; parked: "
                                         "in a retry topic)", labels=["hook", "outcome"])
        attempts = CounterMetricFamily("hookd_delivery_attempts", "Attempts made, by the "
                                       "answer's status class (none: no answer)",
                                       labels=["hook", "status_class"])
        duration = HistogramMetricFamily("hookd_delivery_duration_seconds",
                                         "One attempt, from sending to the answer",
                                         labels=["hook"])
        lag = HistogramMetricFamily("hookd_event_delivery_lag_seconds", "From an event's "
                                    "record timestamp to its final delivery")
        for hook_id, stat in (stats.hooks.items() if stats else ()):
            for outcome in OUTCOMES:
                deliveries.add_metric([hook_id, outcome], getattr(stat, outcome))
            for status_class, n in zip(STATUS_CLASSES, stat.attempts, strict=True):
                if n or status_class != "1xx":
                    attempts.add_metric([hook_id, status_class], n)
            _histogram(duration, [hook_id], stat.duration)
        if stats is not None:
            _histogram(lag, [], stats.lag)
        yield from (deliveries, attempts, duration, lag)

        records = CounterMetricFamily("hookd_records", "Source records taken, by what came "
                                      "of them (skipped: no enabled hook matched)",
                                      labels=["result"])
        events = counters.events if counters else 0
        bad = counters.decode_errors if counters else 0
        records.add_metric(["decoded"], events - bad)
        records.add_metric(["bad"], bad)
        records.add_metric(["skipped"], counters.unmatched if counters else 0)
        yield records
        dead = CounterMetricFamily("hookd_dead_letters", "Records written to the "
                                   "dead-letter topic (deliveries and bad records)")
        dead.add_metric([], counters.dead_lettered if counters else 0)
        yield dead
        dropped = CounterMetricFamily("hookd_trace_context_dropped", "Invalid traceparent "
                                      "or tracestate values of records, not sent on",
                                      labels=["header"])
        dropped.add_metric(["traceparent"], DROPPED.traceparent)
        dropped.add_metric(["tracestate"], DROPPED.tracestate)
        yield dropped

        yield GaugeMetricFamily("hookd_in_flight", "Attempts on the wire now",
                                value=sender.endpoints.in_flight if sender else 0)
        yield GaugeMetricFamily("hookd_records_pending", "Records taken, not final yet",
                                value=dispatcher.pending if dispatcher else 0)
        yield self._retrying(counters.retrying if counters else 0)
        yield self._lag()

        circuits = sender.endpoints.open_circuits() if sender else []
        circuit = GaugeMetricFamily("hookd_circuit_open", "1 for each open circuit "
                                    "(scope host: every hook of the endpoint; hook: one)",
                                    labels=["endpoint", "scope", "hook"])
        for c in circuits:
            circuit.add_metric([str(c["endpoint"]), str(c["scope"]), str(c.get("hook", ""))],
                               1)
        yield circuit
        hook_enabled = GaugeMetricFamily("hookd_hook_enabled", "0 when disabled by config or "
                                         "by a 410 Gone (until the next reload)",
                                         labels=["hook"])
        for entry in hook_states(runtime, dispatcher.disabled if dispatcher else {},
                                 circuits, None):
            hook_enabled.add_metric([entry["id"]], 1 if enabled(entry) else 0)
        yield hook_enabled

        yield GaugeMetricFamily("hookd_config_generation", "The config in force (1 at start, "
                                "+1 per reload)", value=runtime.generation if runtime else 0)
        reloads = CounterMetricFamily("hookd_config_reload", "Reloads (SIGHUP)",
                                      labels=["result"])
        for result in ("ok", "rejected"):
            reloads.add_metric([result], parts.reloads.get(result, 0))
        yield reloads
        yield GaugeMetricFamily("hookd_ready", "1 when /readyz says ready",
                                value=1 if parts.ready() else 0)
        yield GaugeMetricFamily("hookd_stalled",
                                "Consumers and producers stalled now (see /readyz)",
                                value=parts.stalled())

    def _retrying(self, in_memory: int) -> GaugeMetricFamily:
        """In memory now, and per retry tier: the records of its topic not consumed yet
        (as of their last fetch)."""
        family = GaugeMetricFamily("hookd_retrying", "Deliveries waiting for a next "
                                   "attempt: in memory, or per retry-topic tier",
                                   labels=["tier"])
        family.add_metric(["in_memory"], in_memory)
        parking, retries = self.parts.parking, self.parts.retries
        if parking is not None:
            waiting: dict[str, int] = dict.fromkeys(parking.topics, 0)
            for tp, n in (retries.lag() if retries else {}).items():
                topic = _split(tp)[0]
                waiting[topic] = waiting.get(topic, 0) + n
            for topic, n in sorted(waiting.items()):
                family.add_metric([topic.removeprefix(parking.prefix + ".")], n)
        return family

    def _lag(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("hookd_consumer_lag", "Records not consumed yet per "
                                   "partition, as of the last fetch (consumer source: the "
                                   "event topics; retry: the retry topics, whose records wait "
                                   "there until due)", labels=["consumer", "topic", "partition"])
        for name, loop in (("source", self.parts.source), ("retry", self.parts.retries)):
            lag: Mapping[str, int] = loop.lag() if loop is not None else {}
            for tp, n in sorted(lag.items()):
                family.add_metric([name, *_split(tp)], n)
        return family


def registry_of(parts: Parts) -> CollectorRegistry:
    """A registry of the daemon's own: its collector, and the process's (RSS, CPU, fds)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(DaemonCollector(parts))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)

