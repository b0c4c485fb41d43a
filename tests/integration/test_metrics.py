"""GET /metrics and `hookd status` against a daemon on tansu with mixed traffic (a real
receiver): one hook delivered, one retried then delivered, one dead-lettered after a 4xx,
one disabled by a 410 (its next event skipped), and a bad record. The scrape is parsed
with prometheus_client's parser; the alert rules must name series it has."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from hookd.cli.status import cmd_status
from tests.integration.harness import (
    hook,
    new_topic,
    produce,
    running,
    until,
    wait_ready,
    write_config,
)
from tests.integration.receiver import Receiver
from tests.unit.service.test_metrics import exposed, rule_series

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_and_status_after_mixed_traffic(
        bootstrap: str, receiver: Receiver, tmp_path: Path) -> None:
    receiver.plan["/flaky"].append(503)  # then 200
    receiver.plan["/bad"].extend([400, 400])
    receiver.plan["/gone"].append(410)
    topic = await new_topic(bootstrap, 1, "metrics")
    cfg = write_config(tmp_path, bootstrap, topic, [
        hook(name, "Answered", receiver.url(f"/{name}"))
        for name in ("ok", "flaky", "bad", "gone")])
    async with running(cfg) as daemon:
        await wait_ready(daemon)
        assert daemon.health is not None and daemon.dispatcher is not None
        port, counters = daemon.health.port, daemon.dispatcher.counters
        await produce(bootstrap, topic, [(b"call-1", {"event": "Answered", "id": "e1"})])
        await until(lambda: "gone" in daemon.dispatcher.disabled  # type: ignore[union-attr]
                    and counters.delivered == 2 and counters.dead_lettered == 2, 20,
                    "the first event's deliveries")
        await produce(bootstrap, topic, [(b"call-1", {"event": "Answered", "id": "e2"}),
                                         (None, b"{not json")])
        await until(lambda: counters.delivered == 4 and counters.dead_lettered == 4, 20,
                    "the second event's deliveries and the bad record")
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(cmd_status, str(cfg), f"127.0.0.1:{port}", False,
                                       out, err)
        as_json = io.StringIO()
        await asyncio.to_thread(cmd_status, str(cfg), f"127.0.0.1:{port}", True, as_json, err)
    print("\n# the scrape (hookd_* lines)")
    print("\n".join(line for line in text.splitlines() if "hookd_" in line))
    print("\n# hookd status")
    print(out.getvalue())
    assert code == 0, err.getvalue()

    s = _samples(text)

    def one(name: str, **labels: str) -> float:
        return s[(name, tuple(sorted(labels.items())))]

    outcomes = {(h, o): one("hookd_deliveries_total", hook=h, outcome=o)
                for h in ("ok", "flaky", "bad", "gone")
                for o in ("delivered", "retried", "parked", "dead_lettered", "skipped")}
    assert {k: v for k, v in outcomes.items() if v} == {
        ("ok", "delivered"): 2, ("flaky", "delivered"): 2, ("flaky", "retried"): 1,
        ("bad", "dead_lettered"): 2, ("gone", "dead_lettered"): 1, ("gone", "skipped"): 1}
    attempts = {(h, c): one("hookd_delivery_attempts_total", hook=h, status_class=c)
                for h in ("ok", "flaky", "bad", "gone")
                for c in ("none", "2xx", "3xx", "4xx", "5xx")}
    assert {k: v for k, v in attempts.items() if v} == {
        ("ok", "2xx"): 2, ("flaky", "5xx"): 1, ("flaky", "2xx"): 2, ("bad", "4xx"): 2,
        ("gone", "4xx"): 1}
    assert one("hookd_delivery_duration_seconds_count", hook="flaky") == 3
    assert one("hookd_delivery_duration_seconds_bucket", hook="ok", le="+Inf") == 2
    assert one("hookd_event_delivery_lag_seconds_count") == 4
    assert one("hookd_records_total", result="decoded") == 2
    assert one("hookd_records_total", result="bad") == 1
    assert one("hookd_dead_letters_total") == 4
    assert [one("hookd_hook_enabled", hook=h) for h in ("ok", "flaky", "bad", "gone")] == [
        1, 1, 1, 0]
    assert one("hookd_consumer_lag", consumer="source", topic=topic, partition="0") == 0
    assert one("hookd_retrying", tier="in_memory") == 0
    assert one("hookd_in_flight") == 0 and one("hookd_ready") == 1
    assert one("hookd_config_generation") == 1
    assert one("hookd_config_reload_total", result="ok") == 0
    assert one("process_resident_memory_bytes") > 0
    names = exposed(text)
    for alert, series in rule_series().items():
        assert series <= names, (alert, series - names)

    rows = {line.split()[0]: line for line in out.getvalue().splitlines()[1:-1]}
    assert set(rows) == {"ok", "flaky", "bad", "gone"}
    assert "disabled-by-410" in rows["gone"] and "HTTP 410" in rows["gone"]
    assert rows["bad"].split()[5:7] == ["0", "2"]  # (enabled) delivered 0, dead-lettered 2
    assert "HTTP 400" in rows["bad"]
    hooks = {h["id"]: h for h in json.loads(as_json.getvalue())["hooks"]}
    assert (hooks["flaky"]["delivered"], hooks["flaky"]["retried"]) == (2, 1)
    assert hooks["flaky"]["last_error"].startswith("HTTP 503")
    assert hooks["ok"]["last_error"] is None and hooks["ok"]["state"] == "enabled"
    assert hooks["gone"]["dead_lettered"] == 1 and hooks["gone"]["skipped"] == 1
