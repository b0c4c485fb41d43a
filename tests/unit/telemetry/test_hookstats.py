"""hookd.telemetry.hookstats (per-hook figures) and hookd.service.hookview (each hook's state)."""

from __future__ import annotations

import time

import pytest

from hookd.cli.status import state_text
from hookd.delivery.retries import ErrorKind
from hookd.events.decode import Event, Meta
from hookd.pipeline.runtime import load_config
from hookd.service.hookview import CIRCUIT_OPEN, DISABLED, ENABLED, GONE, enabled, hook_states
from hookd.telemetry.hookstats import (
    DURATION_BUCKETS,
    LAG_BUCKETS,
    STATUS_CLASSES,
    Buckets,
    HookStat,
    HookStats,
)
from tests.unit.conftest import WriteConfig
from tests.unit.delivery.test_sender import SenderFactory, closed_port, make_sender

__all__ = ["make_sender"]  # the fixture: a real HttpSender, closed at teardown


def test_buckets_count_each_value_once_and_cumulate_when_read() -> None:
    buckets = Buckets((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0, 7.0):
        buckets.observe(value)
    assert buckets.counts == [2, 1, 2]  # le 0.1 is inclusive, as Prometheus has it
    assert buckets.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 5)]
    assert buckets.count == 5 and buckets.sum == pytest.approx(10.65)


def test_an_attempt_counts_in_its_status_class() -> None:
    stat = HookStat()
    for status in (200, 204, 302, 404, 503, None, 0, 99, 700):
        stat.attempt(status, 0.02)
    # none, 1xx, 2xx, 3xx, 4xx, 5xx: no answer (or a status out of range) is `none`
    assert stat.attempts == [4, 0, 2, 1, 1, 1]
    assert stat.duration.count == 9
    assert stat.duration.counts[DURATION_BUCKETS.index(0.025)] == 9


def test_retrying_is_waiting_in_memory_plus_parked_not_back() -> None:
    stat = HookStat()
    stat.waiting, stat.parked, stat.returned = 2, 5, 3
    assert stat.retrying == 4
    stat.returned = 9  # parked by an earlier run: never below what waits in memory
    assert stat.retrying == 2


def test_last_error_has_its_time() -> None:
    stat = HookStat()
    assert stat.as_dict()["last_error"] is None
    before = time.time()
    stat.error("503: Service Unavailable")
    figures = stat.as_dict()
    assert figures["last_error"] == "503: Service Unavailable"
    assert "dead_lettered" in figures and "failed" not in figures  # one name per fact
    assert isinstance(figures["last_error_at"], float) and figures["last_error_at"] >= before


def test_a_reload_keeps_the_figures_of_the_hooks_it_keeps() -> None:
    stats = HookStats(["a", "b"])
    stats.of("a").delivered = 3
    stats.of("late").delivered = 1  # parked before a reload removed it: made on first use
    stats.of("b").dead_lettered = 2
    stats.keep(["a", "c"])
    assert sorted(stats.hooks) == ["a", "c"]
    assert stats.hooks["a"].delivered == 3 and stats.hooks["c"].delivered == 0
    # the totals never go down: a removed hook's figures stay in them...
    assert (stats.total("delivered"), stats.total("dead_lettered")) == (4, 2)
    stats.keep(["a", "b"])  # ...and come back with it
    assert stats.hooks["b"].dead_lettered == 2 and stats.total("dead_lettered") == 2


def test_delivered_observes_the_lag_from_the_record_timestamp() -> None:
    stats = HookStats(["a"])
    now = time.time()
    stats.delivered("a", int((now - 2.0) * 1000), now)
    stats.delivered("a", None, now)  # no timestamp: counted, no lag
    stats.delivered("a", int((now + 5.0) * 1000), now)  # a clock ahead: no negative lag
    stats.delivered("late", -1, now)  # a hook no longer configured: made on first use
    assert stats.of("a").delivered == 3 and stats.of("late").delivered == 1
    assert stats.lag.count == 2 and 1.9 < stats.lag.sum < 2.1
    assert stats.lag.counts[LAG_BUCKETS.index(2.5)] == 1 and stats.lag.counts[0] == 1
    assert stats.of("a").attempts == [0] * len(STATUS_CLASSES)  # /metrics off: no attempt


def test_delivered_with_its_attempt_counts_what_attempt_and_observe_count() -> None:
    """One call per delivery (the hot path) counts what `HookStat.attempt`, the delivered
    count and `Buckets.observe` of the lag count one by one."""
    now = time.time()
    ours, theirs = HookStats(["a"]), HookStats(["a"])
    for seconds, lag in ((0.004, 0.3), (0.02, 2.0), (0.02, 0.0), (40.0, 99999.0),
                         (0.5, -5.0)):  # (a record stamped ahead of this clock)
        ours.delivered("a", int((now - lag) * 1000), now, seconds)
        stat = theirs.of("a")
        stat.attempt(200, seconds)
        stat.delivered += 1
        theirs.lag.observe(max(0.0, now - int((now - lag) * 1000) / 1000))
    mine, expected = ours.of("a"), theirs.of("a")
    assert mine.attempts == expected.attempts == [0, 0, 5, 0, 0, 0]
    assert mine.duration.counts == expected.duration.counts
    assert mine.duration.sum == expected.duration.sum
    assert ours.lag.counts == theirs.lag.counts and ours.lag.sum == theirs.lag.sum
    assert mine.as_dict() == expected.as_dict()


def test_hook_states(write_config: WriteConfig) -> None:
    tree = write_config("""
        kafka: {bootstrap_servers: ["127.0.0.1:9092"], topics: [cc.events], group_id: g}
        hooks:
          - {id: ok, event: Answered, request: {url: "https://a.example/ok"}}
          - {id: dormant, enabled: false, event: Answered, request: {url: "https://a.example/x"}}
          - {id: gone, event: [Answered, Joined], request: {url: "https://b.example/g"}}
          - {id: host, event: Answered, request: {url: "https://c.example/h"}}
          - {id: mine, event: Answered, request: {url: "https://a.example/m"}}
          - {id: tmpl, event: Answered,
             request: {method: PUT, url: "https://{{ payload.host }}/t"}}
        """)
    runtime = load_config(tree.main)
    stats = HookStats(h.id for h in runtime.hooks)
    stats.of("ok").delivered = 4
    circuits = [{"endpoint": "https://c.example:443", "scope": "host", "next_probe_in_s": 10},
                {"endpoint": "https://a.example:443", "scope": "hook", "hook": "mine",
                 "next_probe_in_s": 5},
                {"endpoint": "https://d.example:443", "scope": "hook", "hook": "tmpl",
                 "next_probe_in_s": 0}]
    states = hook_states(runtime, {"gone": "410 Gone from https://b.example/g"}, circuits,
                         stats, now=1000.0)
    by_id = {s["id"]: s for s in states}
    assert [s["id"] for s in states] == ["ok", "dormant", "gone", "host", "mine", "tmpl"]
    assert [s["state"] for s in states] == [ENABLED, DISABLED, GONE, CIRCUIT_OPEN,
                                            CIRCUIT_OPEN, CIRCUIT_OPEN]
    assert by_id["host"]["circuit_open_until"] == 1010.0  # the host's circuit: all its hooks
    assert by_id["mine"]["circuit_open_until"] == 1005.0  # its own
    assert by_id["tmpl"]["circuit_open_until"] == 1000.0  # templated: its own only
    assert [s["circuit_scope"] for s in states] == [None, None, None, "host", "hook", "hook"]
    assert by_id["ok"]["circuit_open_until"] is None and by_id["ok"]["delivered"] == 4
    assert by_id["gone"]["reason"] == "410 Gone from https://b.example/g"
    assert by_id["gone"]["event"] == ["Answered", "Joined"]
    assert (by_id["tmpl"]["method"], by_id["tmpl"]["url"]) == (
        "PUT", "https://{{ payload.host }}/t")  # as written
    assert [enabled(s) for s in states] == [True, False, False, True, True, True]
    assert hook_states(None, {}, [], None) == []


async def test_a_templated_path_hook_shows_its_host_circuit_open(
        write_config: WriteConfig, make_sender: SenderFactory) -> None:
    """config/hooks.yaml's first hook's shape (literal scheme://host:port, templated path),
    its host down: a real HttpSender, connections refused on a closed loopback port, opens
    the host's circuit; the hook's state (the health document's `hooks`, `hookd status`)
    and /metrics' enabled gauge see it through the endpoint compiled once."""
    port = closed_port()
    tree = write_config(f"""
        kafka: {{bootstrap_servers: ["127.0.0.1:9092"], topics: [cc.events], group_id: g}}
        hooks:
          - {{id: calls, event: Answered,
             request: {{url: "http://127.0.0.1:{port}/calls/{{{{ member_call_id }}}}"}}}}
          - {{id: other, event: Answered,
             request: {{url: "http://{{{{ host }}}}:{port}/x"}}}}
        """)
    runtime = load_config(tree.main)
    calls = runtime.hook("calls")
    assert calls is not None and calls.endpoint == f"http://127.0.0.1:{port}"
    sender = await make_sender(circuit_breaker={"failures": 2, "cooldown": "30s"})
    for n in range(2):
        event = Event("Answered", f"e-{n}", {"member_call_id": f"m-{n}"},
                      Meta("cc.events", 0, n))
        outcome = await sender.attempt(calls.render(event), None, 2.0)
        assert outcome.kind is ErrorKind.CONNECT
    before = time.time()
    by_id = {s["id"]: s for s in hook_states(runtime, {}, sender.endpoints.open_circuits(),
                                             HookStats())}
    entry = by_id["calls"]
    assert (entry["state"], entry["circuit_scope"]) == (CIRCUIT_OPEN, "host")
    assert entry["endpoint"] == f"http://127.0.0.1:{port}"
    assert before + 25 < entry["circuit_open_until"] <= time.time() + 30
    assert state_text(entry).startswith("circuit-open (host) until ")
    assert enabled(entry)  # a pause, not a disabling
    # its host is decided per delivery: no endpoint, and no circuit of its own is open
    assert (by_id["other"]["state"], by_id["other"]["endpoint"]) == (ENABLED, None)
