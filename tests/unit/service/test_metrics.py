"""hookd.service.metrics: the collector against fake parts, its exposition parsed back with
prometheus_client's own parser, and /metrics on the health listener."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hookd.delivery.retries import ErrorKind, failure
from hookd.delivery.sender import HttpSender
from hookd.pipeline.dispatch import Dispatcher
from hookd.pipeline.runtime import Runtime, load_config
from hookd.service.health import HealthServer
from hookd.service.metrics import exposition, registry_of
from hookd.telemetry.hookstats import HookStats
from hookd.telemetry.logs import REDACTOR
from tests.unit.conftest import REPO, WriteConfig
from tests.unit.service.test_health import Letters, Loop

CONFIG = """
    kafka: {bootstrap_servers: ["127.0.0.1:9092"], topics: [cc.events], group_id: g}
    hooks:
      - {id: crm, event: Answered, request: {url: "https://crm.example/hook"}}
      - {id: gone, event: Joined, request: {url: "https://old.example/hook"}}
      - {id: dormant, enabled: false, event: Joined, request: {url: "https://x.example/"}}
    """


@dataclass
class Lot:
    prefix: str = "hookd.retry"
    topics: list[str] = field(default_factory=lambda: ["hookd.retry.30s", "hookd.retry.5m"])


@dataclass
class Parts:
    runtime: Runtime | None = None
    dispatcher: Dispatcher | None = None
    sender: HttpSender | None = None
    source: Any = None
    retries: Any = None
    parking: Any = None
    reloads: dict[str, int] = field(default_factory=lambda: {"ok": 0, "rejected": 0})
    is_ready: bool = False
    stalls: int = 0

    def current(self) -> Runtime | None:
        return self.runtime

    def ready(self) -> bool:
        return self.is_ready

    def stalled(self) -> int:
        return self.stalls


def scrape(parts: Parts) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition: (name, sorted labels) -> value."""
    text = exposition(registry_of(parts)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_before_anything_started_the_families_are_there_and_zero() -> None:
    samples = scrape(Parts())
    assert samples[("hookd_in_flight", ())] == 0
    assert samples[("hookd_config_generation", ())] == 0
    assert samples[("hookd_ready", ())] == 0
    assert samples[("hookd_retrying", (("tier", "in_memory"),))] == 0
    assert samples[("hookd_records_total", (("result", "decoded"),))] == 0
    assert samples[("hookd_config_reload_total", (("result", "ok"),))] == 0
    assert ("process_resident_memory_bytes", ()) in samples  # the library's process collector


def test_dropped_trace_context_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from hookd.events import trace
    from hookd.service import metrics

    dropped = trace.Dropped()
    monkeypatch.setattr(metrics, "DROPPED", dropped)
    monkeypatch.setattr(trace, "DROPPED", dropped)
    trace.trace_context({"traceparent": "00-nope", "tracestate": "x"})
    trace.trace_context({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "tracestate": "Bad State"})
    samples = scrape(Parts())
    assert samples[("hookd_trace_context_dropped_total", (("header", "traceparent"),))] == 1
    assert samples[("hookd_trace_context_dropped_total", (("header", "tracestate"),))] == 1


def test_the_collector_reads_every_part(write_config: WriteConfig) -> None:
    runtime = load_config(write_config(CONFIG).main)
    sender = HttpSender(runtime.config.delivery)
    crm = sender.endpoints.get("https://crm.example:443")
    for _ in range(runtime.config.delivery.circuit_breaker.failures):
        crm.circuit.record(failure(ErrorKind.CONNECT, "down"), time.monotonic())
    stats = HookStats(h.id for h in runtime.hooks)
    dispatcher = Dispatcher(sender, Letters(), lambda: runtime, REDACTOR, stats=stats)
    dispatcher.disabled["gone"] = "410 Gone"
    c = dispatcher.counters
    c.events, c.decode_errors, c.unmatched, c.bad_dead_lettered = 10, 1, 2, 3
    crm_stat = stats.of("crm")
    crm_stat.delivered, crm_stat.retried, crm_stat.parked = 5, 2, 1
    crm_stat.dead_lettered, crm_stat.skipped, crm_stat.waiting = 1, 0, 3
    for status, seconds in ((200, 0.004), (503, 0.2), (None, 5.5)):
        crm_stat.attempt(status, seconds)
    stats.delivered("crm", int((time.time() - 1.5) * 1000), time.time())
    parts = Parts(runtime, dispatcher, sender,
                  source=Loop([("cc.events", 0)], {"cc.events-0": 7, "cc.events-1": 0}),
                  retries=Loop([("hookd.retry.30s", 0)],
                               {"hookd.retry.30s-0": 2, "hookd.retry.30s-1": 1}),
                  parking=Lot(), reloads={"ok": 2, "rejected": 1}, is_ready=True)
    s = scrape(parts)

    def one(name: str, **labels: str) -> float:
        return s[(name, tuple(sorted(labels.items())))]

    assert one("hookd_deliveries_total", hook="crm", outcome="delivered") == 6
    assert one("hookd_deliveries_total", hook="crm", outcome="retried") == 2
    assert one("hookd_deliveries_total", hook="crm", outcome="parked") == 1
    assert one("hookd_deliveries_total", hook="crm", outcome="dead_lettered") == 1
    assert one("hookd_deliveries_total", hook="gone", outcome="delivered") == 0
    assert one("hookd_delivery_attempts_total", hook="crm", status_class="2xx") == 1
    assert one("hookd_delivery_attempts_total", hook="crm", status_class="5xx") == 1
    assert one("hookd_delivery_attempts_total", hook="crm", status_class="none") == 1
    assert ("hookd_delivery_attempts_total",
            (("hook", "crm"), ("status_class", "1xx"))) not in s  # (none ever made)
    assert one("hookd_delivery_duration_seconds_bucket", hook="crm", le="0.005") == 1
    assert one("hookd_delivery_duration_seconds_bucket", hook="crm", le="0.25") == 2
    assert one("hookd_delivery_duration_seconds_bucket", hook="crm", le="+Inf") == 3
    assert one("hookd_delivery_duration_seconds_count", hook="crm") == 3
    assert abs(one("hookd_delivery_duration_seconds_sum", hook="crm") - 5.704) < 1e-9
    assert one("hookd_event_delivery_lag_seconds_count") == 1
    assert one("hookd_event_delivery_lag_seconds_bucket", le="1.0") == 0
    assert one("hookd_event_delivery_lag_seconds_bucket", le="2.5") == 1
    assert one("hookd_records_total", result="decoded") == 9
    assert one("hookd_records_total", result="bad") == 1
    assert one("hookd_records_total", result="skipped") == 2
    assert one("hookd_dead_letters_total") == 4  # crm's one, and 3 bad records
    assert one("hookd_retrying", tier="in_memory") == 3
    assert one("hookd_retrying", tier="30s") == 3 and one("hookd_retrying", tier="5m") == 0
    assert one("hookd_consumer_lag", consumer="source", topic="cc.events", partition="0") == 7
    assert one("hookd_consumer_lag", consumer="retry", topic="hookd.retry.30s",
               partition="1") == 1
    assert one("hookd_circuit_open", endpoint="https://crm.example:443", scope="host",
               hook="") == 1
    assert [one("hookd_hook_enabled", hook=h) for h in ("crm", "gone", "dormant")] == [1, 0, 0]
    assert one("hookd_config_generation") == runtime.generation
    assert one("hookd_config_reload_total", result="ok") == 2
    assert one("hookd_config_reload_total", result="rejected") == 1
    assert one("hookd_ready") == 1 and one("hookd_stalled") == 0
    assert one("hookd_in_flight") == 0 and one("hookd_records_pending") == 0


def test_two_registries_do_not_clash() -> None:
    first, second = Parts(), Parts(is_ready=True)
    registries = registry_of(first), registry_of(second)  # no "Duplicated timeseries"
    assert b"hookd_ready 0.0" in exposition(registries[0])
    assert b"hookd_ready 1.0" in exposition(registries[1])


async def test_metrics_is_served_on_the_health_listener_when_asked() -> None:
    registry = registry_of(Parts())
    server = HealthServer("127.0.0.1:0", lambda: (True, {}), lambda: exposition(registry))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain; version=")
                text = await resp.text()
            async with session.post(f"http://127.0.0.1:{server.port}/metrics") as resp:
                assert resp.status == 405
    finally:
        await server.stop()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"hookd_deliveries", "hookd_in_flight", "process_resident_memory_bytes"} <= names


RULES = REPO / "config" / "prometheus-rules.yaml"


def rule_series(path: Path = RULES) -> dict[str, set[str]]:
    """Each alert of the rules file -> the hookd_* series its expression names."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: set(re.findall(r"\bhookd_[a-z_]+\b", rule["expr"]))
            for group in groups for rule in group["rules"]}


def exposed(text: str) -> set[str]:
    """Every family and sample name of an exposition."""
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families} | {s.name for f in families for s in f.samples}


def test_the_alert_rules_name_series_the_exposition_has() -> None:
    rules = rule_series()
    assert set(rules) == {"HookdDeadLettersRising", "HookdConsumerLagGrowing",
                          "HookdNotReady"}
    names = exposed(exposition(registry_of(Parts())).decode())
    for alert, series in rules.items():
        assert series and series <= names, (alert, series - names)
